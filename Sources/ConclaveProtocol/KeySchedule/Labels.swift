/// Every domain-separation label used by Conclave's key schedule. Section 3 of
/// protocol/PROTOCOL.md lists the same strings; they are ASCII, without terminator.
public enum Labels {
    public static let fingerprint = "conclave/v1 fingerprint"
    public static let epochExtractSalt = "conclave/v1 epoch"
    public static let senderKey = "conclave/v1 sender"
    public static let ratchet = "conclave/v1 ratchet"
    public static let rosterHash = "conclave/v1 roster"
    public static let securityCode = "conclave/v2 security-code"
    /// SHA-256 prefix of a roster chain link (3.6).
    public static let rosterChain = "conclave/v2 roster-chain"
    /// HKDF info prefix of `relay_auth` (4.1), followed by the relay origin.
    public static let relayAuthV2 = "conclave/v2 relay-auth"
    public static let privateChat = "conclave/v2 private-chat"
    /// HKDF salt of a knock's invite proof (4.2, protocol version 2).
    public static let knockProof = "conclave/v2 knock-proof"
    /// SHA-256 prefix of a `ROSTER_DELTA`'s commitment to the new epoch secret (3.6).
    public static let epochCommit = "conclave/v2 epoch-commit"
    /// HKDF salt of the pairwise key a `KEY_WRAP` is sealed under (3.4).
    public static let keyWrap = "conclave/v2 key-wrap"
    /// HKDF info prefix of one wrap's key, chained with the previous epoch secret (3.4.1).
    public static let keyWrapEpoch = "conclave/v2 key-wrap epoch"
    /// Ed25519 contexts.
    public static let keyPackageSignature = "conclave/v1 key-package"
    public static let knockSignature = "conclave/v1 knock"
    public static let relayAuthSignature = "conclave/v1 relay-auth"
    public static let rosterSignature = "conclave/v1 roster"
    public static let handoverSignature = "conclave/v1 handover"
    public static let knockNoticeSignature = "conclave/v1 knock-notice"
    public static let heartbeatSignature = "conclave/v2 heartbeat"
    public static let rosterDeltaSignature = "conclave/v2 roster-delta"
    public static let moderationRequestSignature = "conclave/v2 moderation-request"
    /// Recording (3.8 and protocol/RECORDING.md).
    public static let recordingNoticeSignature = "conclave/v2 recording-notice"
    public static let recordingConsentSignature = "conclave/v2 recording-consent"
    /// SHA-256 prefix of a recording file's room hash.
    public static let recordingRoom = "conclave/v2 recording-room"
    /// Additional data of a recording file's passphrase key slot.
    public static let recordingPassphrase = "conclave/v2 recording-passphrase"
}
