import Testing
import ConclaveProtocol
import ConclaveTestSupport
@testable import ConclaveClient

extension Participant {
    /// Runs `body` as one job on the participant's executor (nothing else of it runs meanwhile).
    func isolatedForTest<T: Sendable>(_ body: @Sendable (isolated Participant) -> T) -> T { body(self) }
}

/// Issue 14 (found by `conclave load --events`): what the leader's session decides must go
/// on the wire in the order it decided it. A tick that keys a batch of admissions (key
/// packages, the new member's addressed `ROSTER`) computes them at once but sent them from a
/// task of its own; a relay event handled before that task ran (a mute change) made a newer
/// roster delta that overtook them. The new member got that delta before its key package
/// and its `ROSTER`, ignored it as a member without a roster, and stayed one roster version
/// behind: `key_rejected` at the next change, then `stale_keys`, and it stopped sending.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct SendOrderTests {
    @Test func aTicksRekeyGoesOutBeforeARosterChangeDecidedAfterIt() async throws {
        try await withRelay { _, endpoint in
            let hostLog = EventLog(), aliceLog = EventLog(), bobLog = EventLog()
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = true
            // Admissions wait 250 ms for their batch: the window in which the test acts.
            hostOptions.admissionBatchMillis = 250
            let host = try await Participant.host(
                relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let alice = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "alice"), output: aliceLog.output)
            let aliceRun = Task { await alice.run(for: .seconds(60)) }
            try await waitUntil("alice's keys") {
                let a = await alice.securityCode, h = await host.securityCode
                return a != nil && a == h
            }
            let aliceIndex = await alice.index

            // Bob knocks; the leader decides to admit him and waits for the batch.
            let bobJoin = Task { try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "bob"), output: bobLog.output) }
            try await waitUntil("bob's admission pending at the leader", within: .seconds(5)) {
                await host.isolatedForTest { !$0.session.pendingAdmissions.isEmpty }
            }
            // In one job on the leader: a relay event (alice unmuted) is taken up, as the
            // run loop resumed by its arrival would be, and then the tick that keys bob runs.
            await host.isolatedForTest { h in
                Task { await h.handle(.message(.event(EventMessage(actor: ParticipantIndex(aliceIndex), event: .unmuted(ParticipantIndex(aliceIndex)))))) }
                h.session.admissionFlushAt = 0
                h.tickInProgress = false
                h.tickHeldBack = false
                h.tick()
            }
            let bob = try await bobJoin.value
            let bobRun = Task { await bob.run(for: .seconds(60)) }
            // The leader holds the version after alice's change; bob must reach it too.
            let hostVersion = try #require(await host.isolatedForTest { $0.leader?.roster?.rosterVersion })
            try? await waitUntil("bob on the leader's roster version", within: .seconds(5)) {
                await bob.isolatedForTest { $0.member?.roster?.rosterVersion } == hostVersion
            }
            let bobVersion = await bob.isolatedForTest { $0.member?.roster?.rosterVersion }
            #expect(bobVersion == hostVersion, "bob holds roster version \(String(describing: bobVersion)); the leader \(hostVersion)")
            let rejections = await bob.rejections
            #expect(rejections.isEmpty, "bob rejected: \(rejections)")
            await host.stop(); await alice.stop(); await bob.stop()
            _ = await (hostRun.value, aliceRun.value, bobRun.value)
        }
    }
}
