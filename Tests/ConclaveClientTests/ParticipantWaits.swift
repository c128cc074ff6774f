import ConclaveClient

// Waits on live participants: each waits for an event with a deadline (ConclaveTestSupport's
// `waitUntil`), never for a fixed time.

/// The security code every one of `participants` shows, when they all hold keys and agree
/// (and it differs from `previous`, when given: a rekey happened); nil otherwise.
func agreedCode(_ participants: [Participant], differentFrom previous: String? = nil) async -> String? {
    var codes: [String?] = []
    for p in participants { codes.append(await p.securityCode) }
    guard let first = codes.first ?? nil, codes.allSatisfy({ $0 == first }), first != previous else { return nil }
    return first
}

/// Waits until every one of `participants` holds keys and shows the same security code
/// (different from `previous`, when given); returns that code.
@discardableResult
func waitForAgreement(
    _ participants: [Participant], differentFrom previous: String? = nil,
    within: Duration = .seconds(10)
) async throws -> String {
    // The code that satisfied the wait: read again afterwards, it may have moved on.
    var agreed: String?
    try await waitUntil("\(participants.count) participants agreeing on a security code", within: within) {
        agreed = await agreedCode(participants, differentFrom: previous)
        return agreed != nil
    }
    return agreed!
}

/// Waits until `participant` has decrypted a chat line `text`.
func waitForChat(_ participant: Participant, _ text: String, within: Duration = .seconds(10)) async throws {
    try await waitUntil("the chat line \"\(text)\"", within: within) { await participant.chatLog.contains { $0.text == text } }
}

/// Waits until each of `participants` (named) has decrypted "hello from NAME" from every
/// other one and more than `frames` audio frames from each of them.
func waitForEveryoneHearingEveryone(_ participants: [(String, Participant)], frames: Int, within: Duration = .seconds(20)) async throws {
    var indices: [UInt16] = []
    for (_, p) in participants { indices.append(await p.index) }
    try await waitUntil("every hello and \(frames) audio frames from each peer at each participant", within: within) {
        for (i, (_, p)) in participants.enumerated() {
            let heard = await p.chatLog.map(\.text)
            for (j, (other, _)) in participants.enumerated() where j != i {
                if !heard.contains("hello from \(other)") { return false }
                if await p.audioFrames(from: indices[j]) <= frames { return false }
            }
        }
        return true
    }
}
