import ConclaveCrypto

/// Why an end-to-end control message (section 3.6) could not be encoded or decoded.
/// Carries lengths and field names only.
public enum E2EControlError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A control message type this version does not define. Receivers drop it silently.
    case unknownType(UInt8)
    /// The bytes do not parse exactly as the type's layout (the field that failed).
    case malformed(String)
    /// Longer than the limit of its kind (a control frame, or ``SignedRoster/maximumEncodedLength``).
    case tooLong(length: Int, limit: Int)
    /// A roster the leader tried to sign breaks a structural rule (what).
    case invalidRoster(String)

    public var description: String {
        switch self {
        case let .unknownType(t): return "unknown control message type 0x\(String(t, radix: 16))"
        case let .malformed(what): return "malformed control message: \(what)"
        case let .tooLong(l, limit): return "control message of \(l) bytes exceeds \(limit)"
        case let .invalidRoster(what): return "invalid roster: \(what)"
        }
    }
}

/// The check of sections 3.4 or 3.6 that a key package or control message failed. The
/// client reports every one as `key_rejected` (1000) locally; nothing is sent to the relay.
public enum KeyRejectionReason: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The `FRAME` sender is not the current leader's index.
    case notFromLeader(sender: UInt16)
    /// The message does not parse (section 3.6 check 1).
    case malformed(E2EControlError)
    /// Not signed by the current leader key (check 2).
    case badSignature
    /// `room_id` is not this client's room (check 3).
    case wrongRoom
    /// `roster_version` does not increase (check 3).
    case staleRosterVersion(last: UInt32, received: UInt32)
    /// `epoch_change` does not fit the current epoch (check 4).
    case invalidEpochChange(EpochChange, current: UInt64, received: UInt64)
    /// Not exactly one host entry, or it is not the sender with the leader key (check 5).
    case leaderEntryMismatch
    /// Our own index is missing or listed with another identity (check 6).
    case selfMissing
    /// The roster hash differs from the epoch's (check 7, or a new member's confirmation).
    case rosterHashMismatch
    /// A key package failed `KeyPackage(encoded:)` or `open` (3.4 checks 1–10).
    case keyPackage(KeyScheduleError)
    /// A key package's epoch is not newer than ours (3.4 check 11).
    case staleEpoch(current: UInt64, received: UInt64)
    /// A key package reason this member may not accept now (3.4 check 12).
    case unexpectedReason(KeyPackageReason)
    /// No verified `ROSTER` with `epoch_change` 2 announced this epoch and roster hash (3.4 check 12).
    case noMatchingRoster(epoch: UInt64)
    /// A `HANDOVER` failed one of its checks (which).
    case invalidHandover(String)
    /// The member the relay made host is not in the verified roster with that key (3.6).
    case leaderNotInRoster(UInt16)
    /// An `epoch_change` 1 (ratchet) reached a member that has no epoch to ratchet.
    case noEpoch
    /// A `HEARTBEAT` whose sequence does not exceed the last verified one (a replay).
    case staleHeartbeat(last: UInt64, received: UInt64)
    /// A roster gives an index to another identity than an earlier verified roster did.
    case indexReused(UInt16)
    /// A `ROSTER_DELTA` names another base than the roster this member holds.
    case deltaBaseMismatch(have: UInt32, needs: UInt32)
    /// The epoch secret differs from the one the `ROSTER_DELTA` committed to.
    case secretCommitMismatch(epoch: UInt64)
    /// A key wrap for a later epoch than the next: an earlier rekey was withheld from this member.
    case missedEpoch(current: UInt64, received: UInt64)

    public var description: String {
        switch self {
        case let .notFromLeader(s): return "control data from #\(s), who is not the leader"
        case let .malformed(e): return e.description
        case .badSignature: return "not signed by the current leader key"
        case .wrongRoom: return "message for another room"
        case let .staleRosterVersion(l, r): return "roster_version \(r) does not exceed \(l)"
        case let .invalidEpochChange(c, cur, r): return "epoch_change \(c.rawValue) to epoch \(r) does not fit current epoch \(cur)"
        case .leaderEntryMismatch: return "the roster's host entry is not the leader"
        case .selfMissing: return "the roster does not list this participant with its identity"
        case .rosterHashMismatch: return "roster hash differs from the epoch's"
        case let .keyPackage(e): return "key package: \(e)"
        case let .staleEpoch(c, r): return "key package epoch \(r) is not newer than \(c)"
        case let .unexpectedReason(r): return "key package reason \(r.rawValue) not acceptable now"
        case let .noMatchingRoster(e): return "no verified roster announced epoch \(e) with this roster hash"
        case let .invalidHandover(what): return "invalid handover: \(what)"
        case let .leaderNotInRoster(i): return "new host #\(i) is not in the verified roster"
        case .noEpoch: return "a ratchet needs a current epoch"
        case let .staleHeartbeat(l, r): return "heartbeat sequence \(r) does not exceed \(l)"
        case let .indexReused(i): return "the roster gives #\(i) to another identity than before"
        case let .deltaBaseMismatch(have, needs): return "roster delta applies to roster_version \(needs); this member holds \(have)"
        case let .secretCommitMismatch(e): return "the secret of epoch \(e) differs from the one the roster delta committed to"
        case let .missedEpoch(c, r): return "key wrap for epoch \(r) while this member holds epoch \(c): an earlier rekey did not reach it"
        }
    }
}

/// Errors of the member's key schedule: a peer's (leader's or relay's) input failed a check.
public enum E2EError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Report `key_rejected` (1000) locally; nothing from the input was used.
    case keyRejected(KeyRejectionReason)

    public var description: String {
        switch self {
        case let .keyRejected(r): return "key_rejected: \(r)"
        }
    }
}
