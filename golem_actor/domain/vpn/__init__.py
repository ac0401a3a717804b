"""The Golem VPN, pure parts: frame codecs, addressing conventions, the switch's rules.

Nothing here does IO: the vpn_router actor owns the sockets and feeds frames in.
"""
