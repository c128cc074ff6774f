import ConclaveCrypto

/// An epoch for a participant to install locally (section 3.3): what
/// ``LeaderKeySchedule`` and ``MemberKeySchedule`` hand to ``ReceiverKeyRing`` and
/// ``SenderKeyState``. Holds the epoch secret: drop it once applied.
public struct EpochInstall: Sendable {
    public enum Mode: Sendable, Hashable {
        /// Receive under the epoch now; send under it after the 250 ms switch (at once if
        /// nothing was installed before).
        case full
        /// A new member's epoch before its addressed `ROSTER` (3.2): receive from the
        /// leader only (others' frames wait in the buffer), send nothing.
        case provisional
        /// The new member's roster verified: confirm the provisional epoch with its
        /// members and start sending under it at once.
        case confirm
    }

    public let epoch: UInt64
    public let secret: SecretKey
    /// The epoch's verified members (for a provisional epoch: the leader alone).
    public let table: MemberTable
    public var members: [RosterMember] { table.members }
    public let mode: Mode
    /// Members of the previous epoch this one leaves out (a leave, a removal): their
    /// frames stop opening under the previous epoch too, and sending switches at once
    /// (3.3, 3.6). Empty for joins and rotations.
    public let removed: Set<UInt16>

    public init(epoch: UInt64, secret: SecretKey, members: [RosterMember], mode: Mode, removed: Set<UInt16> = []) {
        self.init(epoch: epoch, secret: secret, table: MemberTable(members), mode: mode, removed: removed)
    }

    /// With a verified roster's ``SignedRoster/memberTable``: nothing is copied.
    public init(epoch: UInt64, secret: SecretKey, table: MemberTable, mode: Mode, removed: Set<UInt16> = []) {
        self.epoch = epoch; self.secret = secret; self.table = table; self.mode = mode; self.removed = removed
    }

    /// Applies the install to a participant's receive and send state; returns the buffered
    /// frames that now open, for the caller to deliver (and, for control frames, to feed
    /// back to the key schedule).
    @discardableResult
    public func apply(receiver: inout ReceiverKeyRing, sender: inout SenderKeyState, now: UInt64) -> [ReceivedFrame] {
        switch mode {
        case .full:
            let released = receiver.install(epoch: epoch, secret: secret, table: table, removing: removed, now: now)
            // An epoch that removes someone is used at once: the removed member holds the
            // old one (3.3). Other epochs wait 250 ms for receivers' key packages.
            sender.install(epoch: epoch, secret: secret, now: now, immediately: !removed.isEmpty)
            sender.setPeers(table)
            return released
        case .provisional:
            return receiver.install(epoch: epoch, secret: secret, table: table, provisional: true, now: now)
        case .confirm:
            let released = receiver.confirm(epoch: epoch, table: table, now: now)
            if (sender.newestEpoch ?? 0) < epoch { sender.install(epoch: epoch, secret: secret, now: now) }
            sender.setPeers(table)
            return released
        }
    }
}

/// What a member's client does after ``MemberKeySchedule`` accepted an input.
public enum MemberAction: Sendable {
    /// Apply to the receive ring and send state (``EpochInstall/apply(receiver:sender:now:)``).
    case install(EpochInstall)
    /// A verified `ROSTER` was recorded: names, roles, presenters, peers' keys and the
    /// security code may have changed (read them from ``MemberKeySchedule``).
    case rosterChanged
    /// Key leadership moved: after a verified `HANDOVER` (`handover` true) or, after the
    /// leader's heartbeat fell silent, to the successor of the last verified `ROSTER`
    /// (`handover` false; the client MUST show it). The security code changed.
    case leaderChanged(index: UInt16, key: Ed25519.PublicKey, handover: Bool)
    /// The relay names another host than the end-to-end leader (or the successor the
    /// verified roster names): nothing moves; the client MUST warn the user (3.6).
    case relayHostDisagrees(relayHost: UInt16, leader: UInt16)
    /// A message held from the successor failed its checks when replayed.
    case heldMessageRejected(KeyRejectionReason)
    /// A verified `ROSTER` no longer lists these members: stop accepting their frames at
    /// once (``ReceiverKeyRing/revoke(_:)``), before the fresh epoch's key package arrives.
    case membersRemoved(Set<UInt16>)
    /// The leader's roster history differs from this member's at `rosterVersion`: a
    /// `ROSTER` was withheld from it, or it was shown another history. The client MUST
    /// raise an alert; the security code (which covers the chain head) shows the split.
    case historyDiffers(rosterVersion: UInt32)
    /// A verified `HEARTBEAT` from the leader: the client restarts its silence timer and
    /// compares `epoch` and `rosterVersion` with its own (3.6).
    case heartbeat(epoch: UInt64, rosterVersion: UInt32)
    /// The leader's signed notice of a knock (co-hosts only; 3.6 KNOCK_NOTICE).
    case knockNotice(index: UInt16, identity: PublicIdentity, displayName: String)
    /// A verified `ROSTER` (or delta) from the leader no longer lists this member: the
    /// leader removed it, end to end, whatever the relay says. The member stops (3.6).
    case removedFromRoster(rosterVersion: UInt32)
    /// The verified roster's successor sent leader messages (held, 3.6) and then the
    /// current leader's verified `HEARTBEAT` arrived: both claim the keys, so the room is
    /// split. The client MUST raise an alert.
    case successorClaimsKeys(successor: UInt16)
}

/// What the leader's client sends and installs, in the order listed (3.2).
///
/// The leader seals its control frames with ``SenderKeyState/EpochChoice/newest``: its
/// newest installed epoch, without the 250 ms media grace. Every member holds that epoch
/// by the time a control frame arrives, because it reached them earlier on the same
/// ordered path (the previous `ROSTER` or key package); the scheduled (older) epoch would
/// not do, since members admitted in the previous change never had it.
public enum LeaderAction: Sendable {
    /// Seal as a control frame (kind 4) broadcast under the newest epoch and send.
    case broadcastControl([UInt8])
    /// Send as a `FRAME` of kind 5 addressed to `recipient`.
    case sendKeyPackage(recipient: UInt16, payload: [UInt8])
    /// Install locally; the 250 ms sending switch counts from here, after the last key package.
    case install(EpochInstall)
    /// Seal as a control frame addressed to `recipient` under the newest epoch (after the
    /// preceding `install`: the new one, which the new member holds) and send.
    case sendControl(recipient: UInt16, plaintext: [UInt8])
}
