// SPDX-License-Identifier: GPL-3.0-or-later
pragma solidity ^0.8.37;

/// @dev The two ERC20 calls this contract makes. Calls go through `_callToken`, which also
/// accepts tokens that return no value at all.
interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);

    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title StreamPayment
/// @notice A sender locks a deposit that vests linearly to a recipient at `ratePerSecond`,
/// from `startTime` until `stopTime`. The token is native ETH when `token` is the zero
/// address, an ERC20 otherwise.
///
/// vested(t) = min((clamp(t, startTime, stopTime) - startTime) * ratePerSecond, deposit)
///
/// A stream exists while its `recipient` is non-zero; `terminate` zeroes it (other fields
/// stay as they were), after which every function treats the id as unknown.
contract StreamPayment {
    struct Stream {
        address token;
        address sender;
        address recipient;
        uint128 startTime;
        uint128 stopTime;
        uint128 ratePerSecond;
        uint256 deposit;
        uint256 withdrawn;
        bool halted;
    }

    address public immutable oracle;
    uint256 public nextStreamId = 1;
    mapping(uint256 => Stream) public streams;

    uint256 private _lock = 1;

    event StreamCreated(
        uint256 indexed streamId,
        address indexed sender,
        address indexed recipient,
        address token,
        uint256 deposit,
        uint256 ratePerSecond,
        uint256 startTime,
        uint256 stopTime
    );
    event Withdraw(uint256 indexed streamId, address indexed recipient, uint256 amount);
    event Terminated(uint256 indexed streamId, uint256 senderRefund, uint256 recipientPayout);
    event Halted(uint256 indexed streamId);
    event ToppedUp(uint256 indexed streamId, uint256 amount, uint128 newStopTime);

    modifier nonReentrant() {
        require(_lock == 1, "reentrant call");
        _lock = 2;
        _;
        _lock = 1;
    }

    constructor(address _oracle) {
        require(_oracle != address(0), "oracle is zero");
        oracle = _oracle;
    }

    function createStream(address token, address recipient, uint256 deposit, uint128 ratePerSecond)
        external
        payable
        nonReentrant
        returns (uint256 streamId)
    {
        require(recipient != address(0), "recipient is zero");
        require(deposit > 0, "deposit is zero");
        require(ratePerSecond > 0, "rate is zero");
        uint256 duration = deposit / ratePerSecond;
        require(duration > 0, "deposit below rate");
        uint256 start = block.timestamp;
        uint256 stop = start + duration;
        require(stop <= type(uint128).max, "duration too long");
        _requireValue(token, deposit);

        streamId = nextStreamId;
        nextStreamId = streamId + 1;
        streams[streamId] = Stream({
            token: token,
            sender: msg.sender,
            recipient: recipient,
            startTime: uint128(start),
            stopTime: uint128(stop),
            ratePerSecond: ratePerSecond,
            deposit: deposit,
            withdrawn: 0,
            halted: false
        });
        emit StreamCreated(
            streamId, msg.sender, recipient, token, deposit, ratePerSecond, start, stop
        );

        if (token != address(0)) {
            _callToken(
                token, abi.encodeCall(IERC20.transferFrom, (msg.sender, address(this), deposit))
            );
        }
    }

    function withdraw(uint256 streamId) external nonReentrant {
        Stream storage s = _existing(streamId);
        require(msg.sender == s.recipient, "not recipient");
        uint256 amount = _vested(s) - s.withdrawn;
        require(amount > 0, "nothing to withdraw");

        s.withdrawn += amount;
        emit Withdraw(streamId, msg.sender, amount);

        _pay(s.token, msg.sender, amount);
    }

    function terminate(uint256 streamId) external nonReentrant {
        Stream storage s = _existing(streamId);
        address sender = s.sender;
        address recipient = s.recipient;
        require(msg.sender == sender || msg.sender == recipient, "not a party");
        uint256 vested = _vested(s);
        uint256 recipientPayout = vested - s.withdrawn;
        uint256 senderRefund = s.deposit - vested;
        address token = s.token;

        s.recipient = address(0);
        emit Terminated(streamId, senderRefund, recipientPayout);

        if (recipientPayout > 0) {
            _pay(token, recipient, recipientPayout);
        }
        if (senderRefund > 0) {
            _pay(token, sender, senderRefund);
        }
    }

    function haltStream(uint256 streamId) external {
        require(msg.sender == oracle, "not oracle");
        Stream storage s = _existing(streamId);
        require(!s.halted, "halted");
        s.halted = true;
        if (s.stopTime > block.timestamp) {
            s.stopTime = uint128(block.timestamp);
        }
        emit Halted(streamId);
    }

    function topUp(uint256 streamId, uint256 amount) external payable nonReentrant {
        Stream storage s = _existing(streamId);
        require(msg.sender == s.sender, "not sender");
        require(!s.halted, "halted");
        uint256 delta = amount / s.ratePerSecond;
        require(delta > 0, "amount below rate");
        uint256 base = s.stopTime > block.timestamp ? s.stopTime : block.timestamp;
        uint256 newStop = base + delta;
        require(newStop <= type(uint128).max, "duration too long");
        address token = s.token;
        _requireValue(token, amount);

        s.deposit += amount;
        s.stopTime = uint128(newStop);
        emit ToppedUp(streamId, amount, uint128(newStop));

        if (token != address(0)) {
            _callToken(
                token, abi.encodeCall(IERC20.transferFrom, (msg.sender, address(this), amount))
            );
        }
    }

    function _existing(uint256 streamId) private view returns (Stream storage s) {
        s = streams[streamId];
        require(s.recipient != address(0), "no-stream");
    }

    function _vested(Stream storage s) private view returns (uint256) {
        uint256 start = s.startTime;
        uint256 stop = s.stopTime;
        uint256 t = block.timestamp;
        if (t < start) {
            t = start;
        } else if (t > stop) {
            t = stop;
        }
        uint256 vested = (t - start) * s.ratePerSecond;
        return vested < s.deposit ? vested : s.deposit;
    }

    /// @dev Native mode needs exactly `amount` attached; ERC20 mode takes no ETH.
    function _requireValue(address token, uint256 amount) private view {
        if (token == address(0)) {
            require(msg.value == amount, "msg.value != amount");
        } else {
            require(msg.value == 0, "ETH sent to token stream");
        }
    }

    function _pay(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            require(ok, "ETH transfer failed");
        } else {
            _callToken(token, abi.encodeCall(IERC20.transfer, (to, amount)));
        }
    }

    function _callToken(address token, bytes memory data) private {
        require(token.code.length > 0, "token has no code");
        (bool ok, bytes memory ret) = token.call(data);
        require(ok && (ret.length == 0 || abi.decode(ret, (bool))), "token transfer failed");
    }
}
