import ConclaveCrypto
import ConclaveProtocol

/// Room ids are capabilities (knowing one lets you knock), so logs carry only a short hash.
enum LogRedaction {
    /// First 8 hex digits of SHA-256("conclave/v1 log" || room_id).
    static func room(_ id: RoomID) -> String {
        String(Hex.encode(SHA2.sha256(Array("conclave/v1 log".utf8) + id.bytes)).prefix(8))
    }
}
