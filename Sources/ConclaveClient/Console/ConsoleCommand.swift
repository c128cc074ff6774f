import ConclaveProtocol

/// A line typed on the participant's standard input: a slash command, or chat text.
public enum ConsoleCommand: Sendable, Equatable {
    case chat(String)
    case privateMessage(to: UInt16, text: String)
    case relay(CommandAction)
    case share(path: String)
    case who
    case code
    case help
    /// Start (`/record on`) or stop (`/record off`) this client's end-to-end recording (3.8).
    case record(Bool)
    /// Answer the recording notices waiting: `/consent` or `/decline`.
    case answerRecording(consent: Bool)
    /// Host: give (`/grant-record N`) or take (`/revoke-record N`) the right to record.
    case setRecorder(UInt16, Bool)

    /// Longest line accepted (chat is at most 4000 bytes, 2.6).
    public static let maximumLineLength = 4000

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public static let helpText = """
        /admit N  /deny N  /lock  /unlock  /mute N  /mute-all  /unmute  /ask-unmute N
        /remove N  /cohost N  /uncohost N  /transfer-host N  /grant-share N  /revoke-share N
        /record on|off  /consent  /decline  /grant-record N  /revoke-record N
        /share FILE  /msg N TEXT  /who  /code  /leave  /end  /help   (any other line is chat)
        """

    /// Parses one line (without its newline). Returns nil for an empty line.
    public static func parse(_ line: String) throws(ParseError) -> ConsoleCommand? {
        guard line.utf8.count <= maximumLineLength else {
            throw ParseError(description: "line of \(line.utf8.count) bytes is longer than \(maximumLineLength)")
        }
        let trimmed = line.trimmingCharacters()
        guard !trimmed.isEmpty else { return nil }
        guard trimmed.hasPrefix("/") else { return .chat(trimmed) }
        let words = trimmed.split(separator: " ", omittingEmptySubsequences: true)
        let name = String(words[0].dropFirst())
        let args = Array(words.dropFirst())

        func index() throws(ParseError) -> ParticipantIndex {
            guard args.count == 1, let n = UInt16(args[0]), ParticipantIndex.memberRange.contains(n) else {
                throw ParseError(description: "/\(name) takes one participant number (see /who)")
            }
            return ParticipantIndex(n)
        }
        func none() throws(ParseError) {
            guard args.isEmpty else { throw ParseError(description: "/\(name) takes no arguments") }
        }

        switch name {
        case "admit": return .relay(.admit(try index()))
        case "deny": return .relay(.deny(try index()))
        case "lock": try none(); return .relay(.lock)
        case "unlock": try none(); return .relay(.unlock)
        case "mute": return .relay(.mute(try index()))
        case "mute-all": try none(); return .relay(.muteAll)
        case "unmute": try none(); return .relay(.unmuteSelf)
        case "ask-unmute": return .relay(.askUnmute(try index()))
        case "remove": return .relay(.remove(try index()))
        case "cohost": return .relay(.promoteCohost(try index()))
        case "uncohost": return .relay(.demoteCohost(try index()))
        case "transfer-host": return .relay(.transferHost(try index()))
        case "grant-share": return .relay(.grantShare(try index()))
        case "revoke-share": return .relay(.revokeShare(try index()))
        case "raise-hand": try none(); return .relay(.raiseHand)
        case "ack-recording": try none(); return .relay(.acknowledgeRecording)
        case "record":
            guard args.count == 1, args[0] == "on" || args[0] == "off" else { throw ParseError(description: "/record takes on or off") }
            return .record(args[0] == "on")
        case "consent": try none(); return .answerRecording(consent: true)
        case "decline": try none(); return .answerRecording(consent: false)
        case "grant-record": return .setRecorder(try index().rawValue, true)
        case "revoke-record": return .setRecorder(try index().rawValue, false)
        case "share":
            guard !args.isEmpty else { throw ParseError(description: "/share takes a file path") }
            return .share(path: args.joined(separator: " "))
        case "msg":
            guard args.count >= 2, let n = UInt16(args[0]), ParticipantIndex.memberRange.contains(n) else {
                throw ParseError(description: "/msg takes a participant number and text")
            }
            return .privateMessage(to: n, text: args.dropFirst().joined(separator: " "))
        case "who": try none(); return .who
        case "code": try none(); return .code
        case "leave": try none(); return .relay(.leave)
        case "end": try none(); return .relay(.endMeeting)
        case "help": return .help
        default: throw ParseError(description: "unknown command /\(name.prefix(32)); /help lists them")
        }
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
