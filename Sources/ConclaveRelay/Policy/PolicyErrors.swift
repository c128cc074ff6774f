import ConclaveProtocol

/// The `ERROR` messages the room policy produces. Texts are short English sentences with
/// no names, secrets or payloads (section 5.8); the string literals are static, so building
/// one does not allocate (``RoomPolicy/routeFrame(_:from:)`` relies on that).
enum PolicyErrors {
    // MARK: Fatal, closing the connection

    static let banned = fatal(.banned, "you were removed from this room")
    static let roomLocked = fatal(.roomLocked, "the room is locked")
    static let roomFull = fatal(.roomFull, "the room is full")
    static let indicesExhausted = fatal(.roomFull, "the room has used all participant indices")
    static let waitingRoomFull = fatal(.waitingRoomFull, "the waiting room is full")
    static let emptyKnock = fatal(.malformed, "a join needs a knock")
    static let knockTooLong = fatal(.malformed, "the knock is over 2048 bytes")
    static let denied = fatal(.denied, "the host denied admission")
    static let removed = fatal(.removed, "you were removed from the room")
    static let ended = fatal(.ended, "the meeting has ended")
    static let roomGone = fatal(.roomNotFound, "the room has closed")
    static let alreadyInRoom = fatal(.unexpectedMessage, "this connection is already in the room")
    static let notInRoom = fatal(.unexpectedMessage, "this connection is not in the room")
    static let waitingCommand = fatal(.unexpectedMessage, "only leave is allowed while waiting")
    static let frameNotAdmitted = fatal(.unexpectedMessage, "frames are only accepted from admitted participants")
    static let wrongSender = fatal(.malformed, "the frame's sender is not this connection's index")

    static func shuttingDown(_ text: String) -> ErrorMessage {
        fatal(.shuttingDown, truncatedToErrorTextLimit(text))
    }

    // MARK: Frame notices (non-fatal)

    static let sharingNotAllowed = ErrorMessage(
        code: .notAllowed, isFatal: false,
        message: "only the host, co-hosts and presenters may share the screen"
    )
    static let keysNotAllowed = ErrorMessage(
        code: .notAllowed, isFatal: false, message: "only the host may send key packages"
    )

    // MARK: Helpers

    private static func fatal(_ code: ErrorCode, _ text: String) -> ErrorMessage {
        ErrorMessage(code: code, isFatal: true, message: text)
    }

    /// Cuts `text` to at most 200 UTF-8 bytes on a character boundary (the `text8<200>` limit).
    static func truncatedToErrorTextLimit(_ text: String) -> String {
        let limit = MessageLimits.maximumErrorTextLength
        guard text.utf8.count > limit else { return text }
        var result = ""
        var length = 0
        for character in text {
            let size = character.utf8.count
            guard length + size <= limit else { break }
            result.append(character)
            length += size
        }
        return result
    }
}
