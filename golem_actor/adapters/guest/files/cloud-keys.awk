# cloud-keys.awk: the guest's reader for the part of a #cloud-config it honours.
# Prints one line per SSH key, "USER<TAB>KEY"; USER is "*" for the top-level
# ssh_authorized_keys list. A user listed under users: without keys prints "USER<TAB>".
# YAML subset: block lists ("- item") under "ssh_authorized_keys:" at the top level or
# inside "users:" items ("- name: x"); item lists may sit at the key's own indent;
# single- or double-quoted scalars; comments and blank lines. Flow lists ([a, b]),
# multi-line scalars and anchors are ignored. POSIX awk (runs under busybox awk).

function lead(s) { match(s, /^ */); return RLENGTH }

function unquote(s) {
    sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s)
    if (s ~ /^'.*'$/) { s = substr(s, 2, length(s) - 2); gsub(/''/, "'", s) }
    else if (s ~ /^".*"$/) { s = substr(s, 2, length(s) - 2); gsub(/\\"/, "\"", s) }
    return s
}

function end_user(    i) {
    if (uname != "") {
        if (nk == 0) print uname "\t"
        for (i = 1; i <= nk; i++) print uname "\t" keys[i]
    }
    uname = ""; nk = 0; keyind = -1; fieldind = -1
}

BEGIN { top = ""; uind = -1; fieldind = -1; keyind = -1; nk = 0; uname = "" }

{ sub(/\r$/, "") }
/^[ \t]*(#.*)?$/ { next }

{
    ind = lead($0); rest = substr($0, ind + 1)
    if (ind == 0 && rest !~ /^- /) {                # a new top-level key
        end_user(); top = ""; uind = -1
        if (rest ~ /^ssh_authorized_keys:[ \t]*$/) top = "keys"
        else if (rest ~ /^users:[ \t]*$/) top = "users"
        next
    }
    if (top == "keys") {
        if (rest ~ /^- /) { k = unquote(substr(rest, 3)); if (k !~ /^\[/) print "*\t" k }
        next
    }
    if (top != "users") next
    if (rest ~ /^- / && (uind < 0 || ind == uind)) {  # a new item of users:
        end_user(); uind = ind
        rest = substr(rest, 3); ind += 2
        n = lead(rest); ind += n; rest = substr(rest, n + 1)
        fieldind = ind
        keyind = -1
    }
    if (fieldind < 0) next
    if (keyind >= 0 && ind >= keyind && rest ~ /^- /) {
        k = unquote(substr(rest, 3)); if (k !~ /^\[/ && k != "") keys[++nk] = k
        next
    }
    keyind = -1
    if (ind == fieldind && match(rest, /^[A-Za-z_][A-Za-z0-9_-]*:/)) {
        f = substr(rest, 1, RLENGTH - 1); v = substr(rest, RLENGTH + 1)
        if (f == "name") uname = unquote(v)
        else if (f == "ssh_authorized_keys" && v ~ /^[ \t]*$/) keyind = ind
    }
}

END { end_user() }
