import ConclaveProtocol

/// Which roles may use which `COMMAND` op (table 5.5), before the target and the room's
/// state are looked at.
///
/// | op | host | co-host | participant |
/// |---|---|---|---|
/// | admit, deny, lock, unlock, mute, mute_all, ask_unmute, remove, grant_share, revoke_share | yes | yes | no |
/// | promote_cohost, demote_cohost, transfer_host, set_recording, set_setting, end_meeting | yes | no | no |
/// | unmute_self, raise_hand, ack_recording, leave, mute_self | yes | yes | yes |
/// | lower_hand | yes | yes | own hand only |
///
/// Co-hosts may not remove the host either, but that is `invalid_command` for everyone
/// (table 5.5: "never the host"). `unmute_self` by a participant also needs the
/// self-unmute setting or a pending ask from a host or co-host.
public enum CommandPermissions {
    /// Who may use an op.
    public enum Requirement: Sendable, Hashable {
        /// Only the host.
        case host
        /// The host or a co-host.
        case hostOrCohost
        /// Any admitted member.
        case anyone
        /// Any admitted member for its own index; the host or a co-host for others'.
        case selfOrHostOrCohost
    }

    /// The requirement of `op`.
    public static func requirement(for op: CommandOp) -> Requirement {
        switch op {
        case .admit, .deny, .lock, .unlock, .mute, .muteAll, .askUnmute, .remove, .grantShare, .revokeShare:
            .hostOrCohost
        case .promoteCohost, .demoteCohost, .transferHost, .setRecording, .setSetting, .endMeeting:
            .host
        case .unmuteSelf, .raiseHand, .acknowledgeRecording, .leave, .muteSelf:
            .anyone
        case .lowerHand:
            .selfOrHostOrCohost
        }
    }

    /// Whether `role` may use `op` on someone else (for ops without a target: at all).
    public static func allows(_ role: Role, _ op: CommandOp) -> Bool {
        switch requirement(for: op) {
        case .host: role == .host
        case .hostOrCohost, .selfOrHostOrCohost: role != .participant
        case .anyone: true
        }
    }
}
