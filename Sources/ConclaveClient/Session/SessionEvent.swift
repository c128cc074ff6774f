#if canImport(Glibc)
import Glibc
#endif
import ConclaveProtocol

/// Why a client raised an `alert`: what the relay claimed (or withheld) that the
/// end-to-end state refuses (3.6). Nothing signed changes on an alert.
public enum AlertCode: String, Sendable, Hashable, CaseIterable {
    /// The relay announced a join the leader did not decide, or one without a knock it opened.
    case unauthorizedJoin = "unauthorized_join"
    /// The relay's `joined` identity differs from the knock's.
    case identityMismatch = "identity_mismatch"
    /// The relay admitted someone the leader (or a co-host's signed request) did not.
    case notAdmitted = "not_admitted"
    case knockReplayed = "knock_replayed"
    case knockReplaced = "knock_replaced"
    case knockRejected = "knock_rejected"
    case tooManyKnocks = "too_many_knocks"
    /// A relay event about roles, presenters or the host disagrees with the signed roster.
    case relayRoleMismatch = "relay_role_mismatch"
    case requestRejected = "request_rejected"
    case roomFull = "room_full"
    case notAMember = "not_a_member"
    /// A roster or rekey was withheld from this client, or the room is split.
    case historyDiffers = "history_differs"
    case leaderLost = "leader_lost"
    case leaderSilent = "leader_silent"
    case staleKeys = "stale_keys"
    case keyWithheld = "key_withheld"
    case unexpectedAdmission = "unexpected_admission"
}

/// What a ``ParticipantSession`` reports to its user. The CLI renders each one as a JSON
/// line or a human line (``render(me:)``); tests match on the cases.
public enum SessionEvent: Sendable, Equatable {
    case alert(AlertCode, String)
    /// Key material refused (a substituted key package, roster or host key).
    case keyRejected(String)
    case admitted(UInt16)
    /// A knock: with the name the leader opened (or a co-host got in a signed notice), or
    /// none (sealed to the host).
    case knock(index: UInt16, name: String?, fingerprint: String, namedByHost: Bool)
    case joined(UInt16, fingerprint: String)
    case left(UInt16, reason: String)
    case muted(UInt16)
    case unmuted(UInt16)
    case locked
    case unlocked
    case recording(Bool)
    /// The relay's role for a participant (its own rules; not the signed roster).
    case role(UInt16, Role)
    case presenter(UInt16, granted: Bool)
    case unmuteRequested
    case ended(String)
    case denied
    case relayError(code: String, message: String)
    case epoch(UInt64, securityCode: String)
    /// This client handed the keys over to the member named.
    case handedOver(to: UInt16)
    /// Key leadership moved to the member named (this client when it is `me`).
    case leader(UInt16, handover: Bool)
    case unknownParticipant(UInt16)
    /// The leader's signed roster removed this client (end to end; the relay may not say so).
    case removed(rosterVersion: UInt32)
    /// A new invite: this client now holds the keys, so knocks must be sealed to it.
    case invite(String)
    case failure(String)
    /// Another member announced (`on`) or stopped a recording, end to end (3.8).
    case recordingNotice(recorder: UInt16, on: Bool, retainUntil: UInt64?)
    /// This client answered a recording notice.
    case recordingAnswered(recorder: UInt16, consent: Bool)
    /// Recorder: a member's signed answer arrived.
    case recordingConsent(member: UInt16, consent: Bool)
    /// Recorder: this client started (with the retention deadline, Unix seconds) or stopped.
    case recordingStarted(retainUntil: UInt64)
    case recordingStopped(String)
    /// A recording request this client cannot carry out (no right, no keys, nothing to answer).
    case recordingRefused(String)

    /// The event's name, JSON fields and human line (`me` is this client's index).
    public func render(me: UInt16) -> (name: String, fields: [(String, EventOutput.Value)], human: String) {
        switch self {
        case let .alert(code, message):
            return ("alert", [("code", .string(code.rawValue)), ("message", .string(message))], "ALERT (\(code.rawValue)): \(message)")
        case let .keyRejected(what):
            return ("error", [("code", .string("key_rejected")), ("message", .string(what))], "REJECTED \(what)")
        case let .admitted(i):
            return ("admitted", [("participant", .int(Int(i)))], "admitted as #\(i)")
        case let .knock(i, name, fingerprint, namedByHost):
            let shown = name ?? "(sealed to the host; name follows from the host)"
            return (
                "knock", [("participant", .int(Int(i))), ("name", .string(shown)), ("fingerprint", .string(fingerprint))],
                "knock\(namedByHost ? " (named by the host)" : ""): #\(i) \(shown) [\(fingerprint)]  (/admit \(i) or /deny \(i))"
            )
        case let .joined(i, fingerprint):
            return ("joined", [("participant", .int(Int(i))), ("fingerprint", .string(fingerprint))], "#\(i) joined [\(fingerprint)]")
        case let .left(i, reason):
            return ("left", [("participant", .int(Int(i))), ("reason", .string(reason))], "#\(i) left (\(reason))")
        case let .muted(i):
            return ("muted", [("participant", .int(Int(i)))], "#\(i) is muted")
        case let .unmuted(i):
            return ("unmuted", [("participant", .int(Int(i)))], "#\(i) is unmuted")
        case .locked: return ("locked", [], "the room is locked")
        case .unlocked: return ("unlocked", [], "the room is unlocked")
        case let .recording(on):
            return ("recording", [("on", .bool(on))], on ? "the host started recording" : "recording stopped")
        case let .role(i, role):
            return ("role", [("participant", .int(Int(i))), ("role", .string(role.name))], "#\(i) is now \(role.name) (relay)")
        case let .presenter(i, granted):
            return (
                "presenter", [("participant", .int(Int(i))), ("granted", .bool(granted))],
                "#\(i) \(granted ? "may" : "may no longer") share the screen (relay)"
            )
        case .unmuteRequested:
            return ("unmute_requested", [], "the host asks you to unmute (/unmute)")
        case let .ended(why): return ("ended", [], why)
        case .denied: return ("denied", [], "the host denied admission")
        case let .relayError(code, message):
            return ("error", [("code", .string(code)), ("message", .string(message))], "\(code): \(message)")
        case let .epoch(e, code):
            return ("epoch", [("epoch", .int(Int(e))), ("security_code", .string(code))], "keys for epoch \(e); security code \(code)")
        case let .handedOver(to):
            return ("leader", [("participant", .int(Int(to))), ("handover", .bool(true))], "handed the keys over to #\(to)")
        case let .leader(i, handover):
            return (
                "leader", [("participant", .int(Int(i))), ("handover", .bool(handover))],
                i == me ? "you now hold the room's keys" : "#\(i) now holds the keys"
            )
        case let .unknownParticipant(i):
            return ("error", [("code", .string("unknown_participant")), ("message", .string("no such participant #\(i)"))], "no such participant #\(i)")
        case let .removed(version):
            return (
                "removed", [("roster_version", .int(Int(version)))],
                "the leader removed you from the signed roster (version \(version)); leaving"
            )
        case let .invite(text):
            return ("invite", [("invite", .string(text))], "invite (knocks now go to you): \(text)")
        case let .failure(message):
            return ("error", [("code", .string("internal")), ("message", .string(message))], message)
        case let .recordingNotice(recorder, on, retainUntil):
            if on {
                return (
                    "recording_notice", [("recorder", .int(Int(recorder))), ("on", .bool(true)), ("retain_until", .int(Int(retainUntil ?? 0)))],
                    "#\(recorder) wants to record this meeting (kept until \(Self.utc(retainUntil ?? 0))): /consent to be recorded, /decline to stay out of it"
                )
            }
            return ("recording_notice", [("recorder", .int(Int(recorder))), ("on", .bool(false))], "#\(recorder) stopped recording")
        case let .recordingAnswered(recorder, consent):
            return (
                "recording_answer", [("recorder", .int(Int(recorder))), ("consent", .bool(consent))],
                consent ? "you consented to #\(recorder)'s recording" : "you declined #\(recorder)'s recording: your audio and chat stay out of it"
            )
        case let .recordingConsent(member, consent):
            return (
                "recording_consent", [("participant", .int(Int(member))), ("consent", .bool(consent))],
                consent ? "#\(member) consented: recording their audio and chat from now on" : "#\(member) declined: they are not recorded"
            )
        case let .recordingStarted(retainUntil):
            return (
                "recording_started", [("retain_until", .int(Int(retainUntil)))],
                "recording (encrypted; retain until \(Self.utc(retainUntil))); each member is recorded only after consenting"
            )
        case let .recordingStopped(reason):
            return ("recording_stopped", [("reason", .string(reason))], "recording stopped: \(reason)")
        case let .recordingRefused(reason):
            return ("error", [("code", .string("recording_refused")), ("message", .string(reason))], "cannot record: \(reason)")
        }
    }

    /// `YYYY-MM-DD HH:MM UTC` for Unix seconds.
    public static func utcString(_ seconds: UInt64) -> String { utc(seconds) }

    static func utc(_ seconds: UInt64) -> String {
        var t = time_t(clamping: seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)) UTC"
    }
}
