import Foundation
import Testing
@testable import ConclaveClient
import ConclaveProtocol

/// The leader is an actor, re-entrant at every `await`: a second key-schedule transition
/// can start while the first one's frames are still going out. Each must still install its
/// epoch and seal its messages in order.
@Suite struct ConcurrentTransitionTests {
    /// Two removals decided at the same moment in a room of ten: the second starts while
    /// the first is still sending its key packages. On the code before the fix, the second
    /// installed its epoch first, the host then refused its own first install ("an install
    /// of epoch e at epoch e + 1"), and the members ended on different keys.
    @Test func overlappingRemovalsInstallInOrder() async throws {
        try await withRelay { _, endpoint in
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = true
            let host = try await Participant.host(
                relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions,
                output: EventOutput(json: true) { _ in })
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            var members: [Participant] = []
            var runs: [Task<Void, Never>] = []
            for i in 0..<9 {
                let p = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "m\(i)"), output: EventOutput(json: true) { _ in })
                runs.append(Task { await p.run(for: .seconds(60)) })
                try await waitUntil("m\(i)'s keys", within: .seconds(10)) { await p.securityCode != nil }
                members.append(p)
            }
            try await waitUntil("everyone on one code", within: .seconds(10)) {
                let code = await host.securityCode
                for m in members where await m.securityCode != code { return false }
                return true
            }
            let first = ParticipantIndex(await members[0].index), second = ParticipantIndex(await members[1].index)
            async let a: Void = host.command(.remove(first))
            async let b: Void = host.command(.remove(second))
            _ = try await (a, b)
            let staying = Array(members.dropFirst(2))
            try await waitUntil("the seven who stay on the host's newest code", within: .seconds(10)) {
                let code = await host.securityCode
                for m in staying where await m.securityCode != code { return false }
                return code != nil
            }
            let hostRejections = await host.rejections
            #expect(hostRejections.isEmpty, "the host refused its own transitions: \(hostRejections)")
            for m in staying {
                let r = await m.rejections, i = await m.index
                #expect(r.isEmpty, "#\(i): \(r)")
            }
            for m in members { await m.stop() }
            await host.stop()
            for r in runs { await r.value }
            await hostRun.value
        }
    }
}
