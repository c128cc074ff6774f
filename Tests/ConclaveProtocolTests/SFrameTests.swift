import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

@Suite struct SFrameTests {
    let room = RoomID(bytes: Array(0..<16).map { UInt8($0) })!

    func key(epoch: UInt64 = 3, sender: UInt16 = 2) throws -> SFrameKey {
        try SFrameKey(
            suite: .conclaveXChaCha20Poly1305SHA256, baseKey: SecretKey(copying: [UInt8](repeating: 7, count: 32)),
            keyID: EpochKeys.keyID(epoch: epoch, sender: sender))
    }

    @Test func roundTripAllSizes() throws {
        let k = try key()
        let md = FrameMetadata(roomID: room).bytes(kind: 1, sender: 2, recipient: 0xFFFF)
        var rng = SplitMix64(seed: 1)
        for length in [0, 1, 15, 16, 64, 160, 1200, 1500, 16_384] {
            for ctr: UInt64 in [0, 7, 8, 255, 256, 1 << 40, .max] {
                let pt = rng.bytes(length)
                let frame = try k.seal(counter: ctr, metadata: md, plaintext: pt)
                #expect(frame.count == SFrameHeader(keyID: k.keyID, counter: ctr).encodedLength + length + 16)
                let opened = try k.open(frame: frame, metadata: md)
                #expect(opened.counter == ctr && opened.plaintext == pt)
            }
        }
    }

    @Test func inPlaceSealAndOpen() throws {
        let k = try key()
        let md = FrameMetadata(roomID: room).bytes(kind: 3, sender: 2, recipient: 5)
        let pt = Array("in place".utf8)
        let h = SFrameHeader(keyID: k.keyID, counter: 99).encodedLength
        var buffer = [UInt8](repeating: 0, count: h + pt.count + 16)
        buffer.replaceSubrange(h..<(h + pt.count), with: pt)
        let n = try buffer.withUnsafeMutableBytes { b in
            try md.withUnsafeBytes { m in try k.sealInPlace(counter: 99, metadata: m, frame: b, plaintextLength: pt.count) }
        }
        #expect(n == buffer.count)
        #expect(buffer == (try k.seal(counter: 99, metadata: md, plaintext: pt)))
        let r = try buffer.withUnsafeMutableBytes { b in try md.withUnsafeBytes { m in try k.openInPlace(frame: b, metadata: m) } }
        #expect(r.counter == 99 && Array(buffer[r.plaintext]) == pt)
    }

    /// A single-bit change anywhere in header, ciphertext, tag or metadata fails to open,
    /// and the output buffer holds no plaintext afterwards.
    @Test func everySingleBitFlipFails() throws {
        let k = try key()
        let md = FrameMetadata(roomID: room).bytes(kind: 1, sender: 2, recipient: 0xFFFF)
        let pt = Array("attack at dawn, bring the canary".utf8)
        let frame = try k.seal(counter: 0x1234, metadata: md, plaintext: pt)
        for bit in 0..<(frame.count * 8) {
            var t = frame; t[bit / 8] ^= 1 << (bit % 8)
            var out = pt + [UInt8](repeating: 0, count: 64)  // a reused buffer that held plaintext
            let result = out.withUnsafeMutableBytes { o in
                t.withUnsafeBytes { f in md.withUnsafeBytes { m in Result { try k.open(frame: f, metadata: m, into: o) } } }
            }
            switch result {
            case .success: Issue.record("bit \(bit) flip opened")
            case .failure(let e as SFrameError):
                // Header bits may change the KID or the header length; the rest must fail authentication.
                #expect(
                    [.authenticationFailed, .truncatedHeader].contains(e)
                        || {
                            if case .keyIDMismatch = e { return true }; if case .frameTooShort = e { return true }; return false
                        }(), "bit \(bit): \(e)")
            case .failure(let e): Issue.record("bit \(bit): unexpected \(e)")
            }
            #expect(!out.starts(with: pt.prefix(8)), "plaintext left in output after bit \(bit)")
        }
        for bit in 0..<(md.count * 8) {
            var m = md; m[bit / 8] ^= 1 << (bit % 8)
            #expect(throws: SFrameError.authenticationFailed) { try k.open(frame: frame, metadata: m) }
        }
    }

    /// The relay can read the kind but cannot re-label screen as audio.
    @Test func relabelledKindFails() throws {
        let k = try key()
        let meta = FrameMetadata(roomID: room)
        let frame = try k.seal(counter: 1, metadata: meta.bytes(kind: 2, sender: 2, recipient: 0xFFFF), plaintext: [1, 2, 3])
        #expect(throws: SFrameError.authenticationFailed) { try k.open(frame: frame, metadata: meta.bytes(kind: 1, sender: 2, recipient: 0xFFFF)) }
        #expect(throws: SFrameError.authenticationFailed) { try k.open(frame: frame, metadata: meta.bytes(kind: 2, sender: 3, recipient: 0xFFFF)) }
        let otherRoom = FrameMetadata(roomID: RoomID(bytes: [UInt8](repeating: 9, count: 16))!)
        #expect(throws: SFrameError.authenticationFailed) { try k.open(frame: frame, metadata: otherRoom.bytes(kind: 2, sender: 2, recipient: 0xFFFF)) }
    }

    @Test func wrongKeyAndMalformedFrames() throws {
        let k = try key(), other = try SFrameKey(suite: .conclaveXChaCha20Poly1305SHA256, baseKey: .random(), keyID: k.keyID)
        let md = [UInt8](repeating: 1, count: 22)
        let frame = try k.seal(counter: 5, metadata: md, plaintext: [9, 9])
        #expect(throws: SFrameError.authenticationFailed) { try other.open(frame: frame, metadata: md) }
        #expect(throws: SFrameError.keyIDMismatch(expected: EpochKeys.keyID(epoch: 4, sender: 2), actual: k.keyID)) {
            try key(epoch: 4).open(frame: frame, metadata: md)
        }
        #expect(throws: SFrameError.truncatedHeader) { try k.open(frame: [], metadata: md) }
        #expect(throws: SFrameError.truncatedHeader) { try k.open(frame: Array(frame.prefix(2)), metadata: md) }
        let h = SFrameHeader(keyID: k.keyID, counter: 5).encodedLength
        #expect(throws: SFrameError.frameTooShort(length: h + 15, minimum: h + 16)) { try k.open(frame: Array(frame.prefix(h + 15)), metadata: md) }
        #expect(throws: SFrameError.metadataTooLong(length: 65, limit: 64)) {
            try k.seal(counter: 1, metadata: [UInt8](repeating: 0, count: 65), plaintext: [])
        }
        #expect(throws: SFrameError.plaintextTooLong(length: 16_385, limit: 16_384)) {
            try k.seal(counter: 1, metadata: md, plaintext: [UInt8](repeating: 0, count: 16_385))
        }
        var small = [UInt8](repeating: 0, count: 10)
        #expect(throws: SFrameError.bufferTooSmall(required: h + 2 + 16, available: 10)) {
            try small.withUnsafeMutableBytes { o in
                try md.withUnsafeBytes { m in
                    try [UInt8](arrayLiteral: 9, 9).withUnsafeBytes { p in try k.seal(counter: 5, metadata: m, plaintext: p, into: o) }
                }
            }
        }
        #expect(throws: SFrameError.unsupportedCipherSuite(0x0001)) {
            try SFrameKey(suite: .aes128CTRHMACSHA256_80, baseKey: .random(), keyID: 1)
        }
    }

    @Test func replayWindow() {
        var w = ReplayWindow()
        #expect(w.check(10) == .fresh)
        w.accept(10)
        #expect(w.check(10) == .duplicate)
        #expect(w.check(9) == .fresh)
        w.accept(9)
        #expect(w.check(9) == .duplicate)
        w.accept(2000)
        #expect(w.check(10) == .tooOld)
        #expect(w.check(2000 - 1023) == .fresh)
        #expect(w.check(2000 - 1024) == .tooOld)
        #expect(w.check(1999) == .fresh)
        w.accept(1999)
        #expect(w.check(1999) == .duplicate)
        #expect(w.check(2001) == .fresh)
        // A jump of exactly the window clears history.
        w.accept(2000 + 1024)
        #expect(w.check(2000) == .tooOld)
        #expect(w.check(2001) == .fresh)
        #expect(w.highestAccepted == 3024)
    }

    /// Found by `Fuzz/FuzzSFrameHeader` (its first round-trip check was too strict):
    /// receivers accept any encoding of KID and CTR (2.2), so `ff` followed by 16 zero
    /// bytes is KID 0 and CTR 0 in 17 bytes, and its shortest form is the single byte `00`.
    @Test func nonShortestHeadersAreAcceptedAndMeanTheSameValues() throws {
        let long = [0xFF] + [UInt8](repeating: 0, count: 16)
        let (header, length) = try SFrameHeader.decode(long)
        #expect(header.keyID == 0 && header.counter == 0 && length == 17)
        #expect(header.encoded == [0x00])
        let (again, shortLength) = try SFrameHeader.decode(header.encoded)
        #expect(again.keyID == 0 && again.counter == 0 && shortLength == 1)
    }
}
