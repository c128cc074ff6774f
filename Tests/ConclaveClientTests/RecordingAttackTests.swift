import Testing
@testable import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol

/// Issue 11 against a hostile relay, in memory (``SimulatedMeeting``).
@Suite struct RecordingAttackTests {
    func startRecording(_ m: SimulatedMeeting) {
        var host = m.clients[m.hostIndex]!.session
        let actions = host.startRecording(retainUntil: 1, now: m.now)
        m.clients[m.hostIndex]!.session = host
        m.carryOut(actions, from: m.hostIndex)
        m.pump()
    }

    func answer(_ m: SimulatedMeeting, _ i: UInt16, _ decision: RecordingConsent.Decision) {
        var s = m.clients[i]!.session
        let actions = s.answerRecording(decision, now: m.now)
        m.clients[i]!.session = s
        m.carryOut(actions, from: i)
        m.pump()
    }

    /// A member who consented leaves; the relay seats a stranger at the same index. The
    /// leader keys no one there, and the recorder records no one there.
    @Test func aReseatedIndexIsNeitherKeyedNorRecorded() throws {
        let m = try SimulatedMeeting()
        let alice = try m.join("alice")
        m.advance(300)
        startRecording(m)
        m.advance(200)
        #expect(
            m.clients[alice]!.events.contains {
                if case .recordingNotice(_, true, _) = $0 { return true }; return false
            })
        answer(m, alice, .consent)
        #expect(m.host.isRecorded(alice))
        m.command(.leave, at: alice)
        m.advance(500)
        #expect(!m.host.isRecorded(alice), "a departed member's index is not recorded")
        let before = m.clients[m.hostIndex]!.events.count
        m.nextIndex = alice  // a hostile relay reuses the index
        let mallory = try m.join("mallory")
        m.advance(1_000)
        #expect(mallory == alice)
        #expect(m.alerts(m.hostIndex, since: before).contains(.identityMismatch))
        #expect(m.host.peerIdentity(alice) == nil, "no key for a reseated index")
        #expect(!m.host.isRecorded(alice))
    }

    /// A notice a joiner could not open (sealed before it held the epoch) is repeated until
    /// it answers; a replayed notice is rejected; a notice from a member without the right
    /// is refused.
    @Test func noticesAreRepeatedUntilAnsweredAndCannotBeForged() throws {
        let m = try SimulatedMeeting()
        let alice = try m.join("alice")
        m.advance(300)
        // The relay withholds the first notice to alice.
        var withheld: [FrameMessage] = []
        m.withhold = { to, message in
            guard to == alice, case let .frame(f) = message, f.header.kind == .control, f.header.sender.rawValue == m.hostIndex,
                withheld.isEmpty, f.payload.count > 100
            else { return false }
            withheld.append(f)
            return true
        }
        startRecording(m)
        m.withhold = { _, _ in false }
        let noticesBefore = m.clients[alice]!.events.filter {
            if case .recordingNotice(_, true, _) = $0 { return true }; return false
        }.count
        m.advance(6_000)
        let notices = m.clients[alice]!.events.filter {
            if case .recordingNotice(_, true, _) = $0 { return true }; return false
        }.count
        #expect(notices > noticesBefore, "the notice came again after being withheld")
        answer(m, alice, .decline)
        #expect(!m.host.isRecorded(alice))
        // The relay replays the withheld (older) notice: rejected as a replay or ignored.
        if let old = withheld.first {
            let count = m.clients[alice]!.events.count
            m.deliver(.frame(old), to: alice)
            m.pump()
            #expect(
                !m.clients[alice]!.events.dropFirst(count).contains {
                    if case .recordingNotice(_, true, _) = $0 { return true }; return false
                })
        }
        // A member without the right announces a recording: refused by everyone.
        let bob = try m.join("bob")
        m.advance(300)
        var b = m.clients[bob]!.session
        let refused = b.startRecording(retainUntil: 1, now: m.now)
        m.clients[bob]!.session = b
        #expect(
            refused.contains {
                if case .event(.recordingRefused) = $0 { return true }; return false
            })
        #expect(!b.isRecording)
    }
}
