import ConclaveTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import ConclaveLoad

/// The C reference forwarder of `conclave bench relay --baseline`, built from the
/// repository's `Benchmarks/ReferenceForwarder/forwarder.c` with the system compiler: it
/// forwards a member's datagram, less the 13-byte MEDIA header and the 16-byte hop tag, to
/// every other member of its room and to no one else.
@Suite(.serialized, .tags(.integration), .live)
struct ReferenceForwarderTests {
    /// Collects what one UDP socket receives.
    final class Inbox: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let received = Mutex<[[UInt8]]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data).data
            received.withLock { $0.append(buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []) }
        }
        var all: [[UInt8]] { received.withLock { $0 } }
    }

    @Test func forwardsTheBodyToTheOtherMembersOfTheRoomOnly() async throws {
        let source = try ReferenceForwarder.locateSource(explicit: nil)
        let forwarder = try await ReferenceForwarder.start(binary: try await ReferenceForwarder.build(source: source))
        var channels: [Channel] = []
        var inboxes: [Inbox] = []
        do {
            // Members 0, 1, 2 in room 7; member 3 alone in room 8.
            for _ in 0..<4 {
                let inbox = Inbox()
                let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(inbox) } }
                    .bind(host: "127.0.0.1", port: 0).get()
                channels.append(channel)
                inboxes.append(inbox)
            }
            for (i, channel) in channels.enumerated() {
                let bytes = ReferenceForwarder.registration(room: i == 3 ? 8 : 7, member: UInt32(i))
                try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: forwarder.address, data: ByteBuffer(bytes: bytes)))
            }
            try await waitUntil("every registration answered", within: .seconds(10)) {
                inboxes.allSatisfy { $0.all.contains { $0.starts(with: ReferenceForwarder.registrationAnswer) } }
            }
            let header = [UInt8](repeating: 0xA1, count: 13), body = Array("the frame".utf8), tag = [UInt8](repeating: 0xB2, count: 16)
            try await channels[0].writeAndFlush(AddressedEnvelope(remoteAddress: forwarder.address, data: ByteBuffer(bytes: header + body + tag)))
            try await waitUntil("members 1 and 2 receive the body", within: .seconds(10)) {
                inboxes[1].all.contains(body) && inboxes[2].all.contains(body)
            }
            // A later datagram from member 3 (another room) reaches only... no one: it is alone.
            try await channels[3].writeAndFlush(
                AddressedEnvelope(remoteAddress: forwarder.address, data: ByteBuffer(bytes: header + Array("alone".utf8) + tag)))
            try await channels[1].writeAndFlush(
                AddressedEnvelope(remoteAddress: forwarder.address, data: ByteBuffer(bytes: header + Array("marker".utf8) + tag)))
            try await waitUntil("member 0 receives member 1's marker", within: .seconds(10)) { inboxes[0].all.contains(Array("marker".utf8)) }
            #expect(!inboxes[0].all.contains(body), "the sender does not receive its own frame")
            #expect(!inboxes[3].all.contains(body), "another room does not receive it")
            for inbox in inboxes { #expect(!inbox.all.contains(Array("alone".utf8))) }
        } catch {
            for c in channels { try? await c.close() }
            await forwarder.stop()
            throw error
        }
        for c in channels { try? await c.close() }
        let closing = await forwarder.stop()
        #expect(closing.hasPrefix("forwarded 4 "), "two frames to two members each: \(closing)")
    }

    @Test func aMissingSourceIsAClearError() throws {
        #expect(throws: ReferenceForwarder.Failure.self) { try ReferenceForwarder.locateSource(explicit: "/nonexistent/forwarder.c") }
    }
}
