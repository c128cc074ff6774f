import Testing
import ConclaveClient
import ConclaveProtocol

@Suite struct ConsoleCommandTests {
    @Test func everyCommandParses() throws {
        let table: [(String, ConsoleCommand)] = [
            ("/admit 3", .relay(.admit(3))), ("/deny 4", .relay(.deny(4))), ("/lock", .relay(.lock)), ("/unlock", .relay(.unlock)),
            ("/mute 2", .relay(.mute(2))), ("/mute-all", .relay(.muteAll)), ("/unmute", .relay(.unmuteSelf)),
            ("/ask-unmute 5", .relay(.askUnmute(5))), ("/remove 6", .relay(.remove(6))), ("/cohost 7", .relay(.promoteCohost(7))),
            ("/uncohost 7", .relay(.demoteCohost(7))), ("/grant-share 2", .relay(.grantShare(2))), ("/revoke-share 2", .relay(.revokeShare(2))),
            ("/record on", .record(true)), ("/record off", .record(false)),
            ("/consent", .answerRecording(consent: true)), ("/decline", .answerRecording(consent: false)),
            ("/grant-record 7", .setRecorder(7, true)), ("/revoke-record 7", .setRecorder(7, false)),
            ("/share /tmp/a b.png", .share(path: "/tmp/a b.png")), ("/msg 3 hello there", .privateMessage(to: 3, text: "hello there")),
            ("/who", .who), ("/code", .code), ("/leave", .relay(.leave)), ("/end", .relay(.endMeeting)), ("/help", .help),
            ("  hello room  ", .chat("hello room")),
        ]
        for (line, expected) in table { #expect(try ConsoleCommand.parse(line) == expected, "\(line)") }
        #expect(try ConsoleCommand.parse("   ") == nil)
    }

    @Test func mistakesAreClearErrors() {
        for bad in [
            "/admit", "/admit x", "/admit 0", "/admit 65535", "/lock now", "/record maybe", "/consent now", "/grant-record", "/revoke-record 0", "/msg 3",
            "/msg x hi", "/frobnicate", "/share",
        ] {
            #expect(throws: ConsoleCommand.ParseError.self, "\(bad)") { try ConsoleCommand.parse(bad) }
        }
        #expect(throws: ConsoleCommand.ParseError.self) { try ConsoleCommand.parse(String(repeating: "a", count: 4001)) }
    }
}
