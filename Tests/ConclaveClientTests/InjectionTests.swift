import Foundation
import Synchronization
import Testing
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol
@testable import ConclaveClient

/// What a malicious relay could do to frames in flight, applied to a real participant:
/// each attack is rejected and counted (issue 4, must-show 4 and 5).
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct InjectionTests {
    @Test func tamperedReplayedRelabelledAndSwappedAreRejectedAndCounted() async throws {
        try await withRelay { _, endpoint in
            let captured = Mutex<[FrameMessage]>([])
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = true
            // No audio source: the counters below must move only for the injected frames (with
            // the host's tone flowing, the guest opened real audio between two snapshots on a
            // loaded machine, and `opened` grew by more than the one genuine frame).
            let quiet = EventOutput(json: true) { _ in }
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: quiet)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            var guestOptions = ParticipantOptions(displayName: "guest")
            guestOptions.inboundTap = { m in
                if case .frame(let f) = m, f.header.kind == .screen || f.header.kind == .audio { captured.withLock { $0.append(f) } }
            }
            let guest = try await Participant.join(invite: invite, options: guestOptions, output: quiet)
            let guestRun = Task { await guest.run(for: .seconds(60)) }
            try await waitForAgreement([host, guest])
            // A screen frame the relay holds in flight (the guest has not seen it).
            let chunk = try ScreenChunk.encode(ScreenChunkHeader(shareID: 77, chunkIndex: 0, totalChunks: 1, totalLength: 3), data: [9, 8, 7])
            let screen = try await host.makeFrame(kind: .screen, plaintext: chunk)
            let before = await guest.receiveCounters

            // 1. One flipped bit in the ciphertext.
            var flipped = screen.payload
            flipped[flipped.count / 2] ^= 0x01
            await guest.handle(.frame(try FrameMessage(kind: .screen, sender: screen.header.sender, recipient: .everyone, payload: flipped)))
            // 2. Relabelled by the relay from screen to audio.
            await guest.handle(.frame(try FrameMessage(kind: .audio, sender: screen.header.sender, recipient: .everyone, payload: screen.payload)))
            var after = await guest.receiveCounters
            #expect(after.decryptFailed == before.decryptFailed + 2, "flipped and relabelled: \(before) → \(after)")
            #expect(after.opened == before.opened, "an attacked frame opened")
            // The genuine frame still opens once; delivered again (a replay) it is dropped.
            await guest.handle(.frame(screen))
            await guest.handle(.frame(screen))
            after = await guest.receiveCounters
            #expect(after.opened == before.opened + 1, "the genuine frame did not open: \(after)")
            #expect(after.replayed == before.replayed + 1, "replay: \(before) → \(after)")

            // 4. A screen frame from a non-presenter that the relay forwards anyway: the host's
            //    client drops it on its own, from the signed roster (2.6).
            let rogue = try await guest.makeFrame(kind: .screen, plaintext: chunk)
            let droppedBefore = await host.screenFromNonPresenters
            await host.handle(.frame(rogue))
            #expect(await host.screenFromNonPresenters == droppedBefore + 1)
            #expect(await host.sharesReceived.isEmpty)

            // 5. A key package swapped in by the relay: signed by a key the guest did not pin.
            let mallory = PrivateIdentity.generate()
            let guestIdentity = await guest.identity.publicIdentity
            let forged = try KeyPackage.create(
                roomID: await guest.roomID, recipient: await guest.index, recipientIdentity: guestIdentity,
                joinNonce: SecureRandom.bytes(count: Knock.joinNonceLength),
                epoch: 99, rosterHash: [UInt8](repeating: 0, count: 32), reason: .fresh,
                epochSecret: .random(), leader: mallory.signingKey)
            let codeBefore = await guest.securityCode
            await guest.handle(
                .frame(
                    try FrameMessage(
                        kind: .keys, sender: ParticipantIndex(await host.index), recipient: ParticipantIndex(await guest.index), payload: forged.encoded)))
            let rejections = await guest.rejections
            #expect(rejections.contains { $0.contains("key package") }, "swapped key package not rejected: \(rejections)")
            #expect(await guest.securityCode == codeBefore, "a forged key package changed the keys")
            await guest.stop()
            await host.stop()
            await guestRun.value
            await hostRun.value
        }
    }
}
