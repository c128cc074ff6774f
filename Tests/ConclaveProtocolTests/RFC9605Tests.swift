import Testing
import Foundation
import ConclaveCrypto
@testable import ConclaveProtocol

/// RFC 9605 Appendix C conformance.
@Suite struct RFC9605Tests {
    // A dozen of the 289 header cases (indices 0,1,2,3,30,60,100,150,200,250,287,288 of
    // RFC 9605 Appendix C.1), as literals, so the test runs without shared/.
    static let headerLiterals: [(UInt64, UInt64, String)] = [
        (0, 0, "00"),
        (0, 1, "01"),
        (0, 255, "08ff"),
        (0, 256, "090100"),
        (1, 281474976710656, "1e01000000000000"),
        (256, 4294967296, "9c01000100000000"),
        (65536, 72057594037927936, "af0100000100000000000000"),
        (4294967295, 72057594037927935, "beffffffffffffffffffffff"),
        (1099511627776, 281474976710656, "de01000000000001000000000000"),
        (72057594037927935, 281474976710655, "edffffffffffffffffffffffffff"),
        (18446744073709551615, 72057594037927936, "ffffffffffffffffff0100000000000000"),
        (18446744073709551615, 18446744073709551615, "ffffffffffffffffffffffffffffffffff"),
    ]

    @Test func headerLiteralCases() throws {
        for (kid, ctr, encoded) in Self.headerLiterals {
            let header = SFrameHeader(keyID: kid, counter: ctr)
            #expect(Hex.encode(header.encoded) == encoded, "kid \(kid) ctr \(ctr)")
            let (decoded, length) = try SFrameHeader.decode(hexBytes(encoded) + [0xAA, 0xBB])
            #expect(decoded == header)
            #expect(length == encoded.count / 2)
        }
    }

    /// All 289 header vectors from shared/vectors when the file is there.
    @Test func allPublishedHeaderCases() throws {
        guard let json = sharedRFC9605Vectors() else {
            print("note: ../shared/vectors/sframe-rfc9605.json not found; header literals only")
            return
        }
        let cases = json["header"] as! [[String: Any]]
        #expect(cases.count == 289)
        for c in cases {
            let kid = (c["kid"] as! NSNumberLike).uint64, ctr = (c["ctr"] as! NSNumberLike).uint64
            let encoded = c["encoded"] as! String
            #expect(Hex.encode(SFrameHeader(keyID: kid, counter: ctr).encoded) == encoded)
            let (decoded, length) = try SFrameHeader.decode(hexBytes(encoded))
            #expect(decoded.keyID == kid && decoded.counter == ctr && length == encoded.count / 2)
        }
    }

    /// The full suite 0x0005 vector, as literals.
    @Test(.enabled(if: AES256GCM.isAvailable)) func suite5FullVector() throws {
        let material = try SFrameKeyMaterial(
            suite: .aes256GCMSHA512_128, baseKey: SecretKey(copying: hexBytes("000102030405060708090a0b0c0d0e0f")), keyID: 0x123)
        #expect(
            Hex.encode(SFrameKeyMaterial.keyLabel(keyID: 0x123, suite: .aes256GCMSHA512_128))
                == "534672616d6520312e3020536563726574206b65792000000000000001230005")
        #expect(
            Hex.encode(SFrameKeyMaterial.saltLabel(keyID: 0x123, suite: .aes256GCMSHA512_128))
                == "534672616d6520312e30205365637265742073616c742000000000000001230005")
        #expect(
            material.secret.unsafeHexExport()
                == "0fc3ea6de6aac97a35f194cf9bed94d4b5230f1cb45a785c9fe5dce9c188938ab6ba005bc4c0a19181599e9d1bcf7b74aca48b60bf5e254e546d809313e083a3")
        #expect(material.key.unsafeHexExport() == "d3e27b0d4a5ae9e55df01a70e6d4d28d969b246e2936f4b7a5d9b494da6b9633")
        #expect(material.salt.unsafeHexExport() == "84991c167b8cd23c93708ec7")
        #expect(Hex.encode(material.nonce(counter: 0x4567)) == "84991c167b8cd23c9370cba0")
        let key = try SFrameKey(material: material)
        let metadata = hexBytes("4945544620534672616d65205747")
        let pt = hexBytes("64726166742d696574662d736672616d652d656e63")
        let expected = "990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279"
        let ct = try key.seal(counter: 0x4567, metadata: metadata, plaintext: pt)
        #expect(Hex.encode(ct) == expected)
        let opened = try key.open(frame: hexBytes(expected), metadata: metadata)
        #expect(opened.counter == 0x4567 && opened.plaintext == pt)
    }

    /// Every published `sframe` vector: key derivation, nonce and AAD for all five suites;
    /// full encryption where libsodium has the AEAD (suite 5).
    @Test func allPublishedSFrameVectors() throws {
        guard let json = sharedRFC9605Vectors() else { return }
        let vectors = json["sframe"] as! [[String: Any]]
        #expect(vectors.count == 5)
        for v in vectors {
            let suite = try SFrameCipherSuite.withID(UInt16((v["cipher_suite"] as! NSNumberLike).uint64))
            let kid = (v["kid"] as! NSNumberLike).uint64, ctr = (v["ctr"] as! NSNumberLike).uint64
            let m = try SFrameKeyMaterial(suite: suite, baseKey: SecretKey(copying: hexBytes(v["base_key"] as! String)), keyID: kid)
            #expect(Hex.encode(SFrameKeyMaterial.keyLabel(keyID: kid, suite: suite)) == v["sframe_key_label"] as! String)
            #expect(Hex.encode(SFrameKeyMaterial.saltLabel(keyID: kid, suite: suite)) == v["sframe_salt_label"] as! String)
            #expect(m.secret.unsafeHexExport() == v["sframe_secret"] as! String, "suite \(suite)")
            #expect(m.key.unsafeHexExport() == v["sframe_key"] as! String, "suite \(suite)")
            #expect(m.salt.unsafeHexExport() == v["sframe_salt"] as! String, "suite \(suite)")
            #expect(Hex.encode(m.nonce(counter: ctr)) == v["nonce"] as! String)
            let header = SFrameHeader(keyID: kid, counter: ctr).encoded
            #expect(Hex.encode(header + hexBytes(v["metadata"] as! String)) == v["aad"] as! String)
            if suite.canSealAndOpen {
                let key = try SFrameKey(material: m)
                let ct = try key.seal(counter: ctr, metadata: hexBytes(v["metadata"] as! String), plaintext: hexBytes(v["pt"] as! String))
                #expect(Hex.encode(ct) == v["ct"] as! String)
            }
        }
    }
}

/// JSON numbers arrive as NSNumber on Linux Foundation; large ones must keep 64 bits.
protocol NSNumberLike { var uint64: UInt64 { get } }
extension NSNumber: NSNumberLike { var uint64: UInt64 { self.uint64Value } }
