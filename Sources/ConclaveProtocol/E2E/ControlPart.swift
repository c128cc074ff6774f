/// A `CONTROL_PART` control message (type `0x06`, section 3.6): one piece of a control
/// message too long for one control frame. Only a `ROSTER` of more than 16 351 bytes
/// (more than 108 members with the longest names; a room has at most 500) is sent so.
///
/// ```
/// u8 type = 6 || u8 version = 2 || u32 message_number || u8 part_index || u8 part_count
/// || u32 total_length || data
/// ```
/// The sender cuts the whole message into `part_count` = ⌈`total_length` / 16 339⌉ parts
/// (2 to 5): every part but the last carries exactly ``maximumDataLength`` bytes, the last
/// the rest. Parts carry no signature of their own: each travels in its own control frame
/// (AEAD under the sender's key), and the reassembled message is checked as if it had
/// arrived whole (a `ROSTER`'s signature covers every byte of it).
public struct ControlPart: Sendable, Hashable {
    public static let type: UInt8 = 0x06
    public static let version: UInt8 = 0x02
    /// Bytes before `data`.
    public static let headerLength = 12
    /// The control plaintext limit (``SignedRoster/maximumSingleFrameLength``) less the header.
    public static let maximumDataLength = SignedRoster.maximumSingleFrameLength - headerLength
    /// The longest message parts may carry: the longest `ROSTER` (500 members with 64-byte names).
    public static let maximumTotalLength = SignedRoster.maximumEncodedLength
    /// ⌈74 631 / 16 339⌉.
    public static let maximumPartCount = (maximumTotalLength + maximumDataLength - 1) / maximumDataLength

    /// Chosen by the sender; different for every message it cuts (a counter).
    public let messageNumber: UInt32
    public let partIndex: UInt8
    public let partCount: UInt8
    public let totalLength: UInt32
    public let data: [UInt8]

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: Self.headerLength + data.count)
        w.writeUInt8(Self.type)
        w.writeUInt8(Self.version)
        w.writeUInt32(messageNumber)
        w.writeUInt8(partIndex)
        w.writeUInt8(partCount)
        w.writeUInt32(totalLength)
        w.writeBytes(data)
        return w.bytes
    }

    /// The parts that carry `message`, or `[message]` itself when it fits one control frame.
    /// Throws ``E2EControlError/tooLong(length:limit:)`` above ``maximumTotalLength``.
    public static func split(_ message: [UInt8], messageNumber: UInt32) throws(E2EControlError) -> [[UInt8]] {
        guard message.count > SignedRoster.maximumSingleFrameLength else { return [message] }
        guard message.count <= maximumTotalLength else { throw .tooLong(length: message.count, limit: maximumTotalLength) }
        let count = (message.count + maximumDataLength - 1) / maximumDataLength
        return (0..<count).map { i in
            let start = i * maximumDataLength
            let end = min(message.count, start + maximumDataLength)
            return ControlPart(
                messageNumber: messageNumber, partIndex: UInt8(i), partCount: UInt8(count),
                totalLength: UInt32(message.count), data: Array(message[start..<end])
            ).encoded
        }
    }

    /// How many bytes part `index` of a `total`-byte message carries.
    static func dataLength(index: Int, count: Int, total: Int) -> Int {
        index < count - 1 ? maximumDataLength : total - (count - 1) * maximumDataLength
    }

    static func decode(body reader: inout ByteReader, totalLength length: Int) throws(E2EControlError) -> ControlPart {
        guard length <= SignedRoster.maximumSingleFrameLength else {
            throw .tooLong(length: length, limit: SignedRoster.maximumSingleFrameLength)
        }
        do {
            let version = try reader.readUInt8("version")
            guard version == Self.version else { throw E2EControlError.malformed("control part version \(version)") }
            let number = try reader.readUInt32("message_number")
            let index = try reader.readUInt8("part_index")
            let count = try reader.readUInt8("part_count")
            let total = try reader.readUInt32("total_length")
            // Every field is checked against the others and the limits before any byte of
            // the whole message is reserved (by the receiver's reassembly).
            guard total > UInt32(SignedRoster.maximumSingleFrameLength), total <= UInt32(maximumTotalLength) else {
                throw E2EControlError.malformed("control part total_length \(total)")
            }
            let expectedCount = (Int(total) + maximumDataLength - 1) / maximumDataLength
            guard Int(count) == expectedCount, index < count else {
                throw E2EControlError.malformed("control part \(index) of \(count) for \(total) bytes")
            }
            let expectedData = dataLength(index: Int(index), count: Int(count), total: Int(total))
            guard reader.remainingCount == expectedData else {
                throw E2EControlError.malformed("control part \(index) carries \(reader.remainingCount) bytes, expected \(expectedData)")
            }
            let data = try reader.readBytes(count: expectedData, field: "data")
            return ControlPart(messageNumber: number, partIndex: index, partCount: count, totalLength: total, data: data)
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("control part")
        }
    }
}

/// Reassembles one sender's ``ControlPart``s (3.6). It holds one message at a time, at
/// most ``ControlPart/maximumTotalLength`` bytes: a part of another `message_number`
/// discards the one in progress (the sender finished or abandoned it, or the relay dropped
/// parts), and a part that disagrees with the parts held (count, length) or repeats one
/// discards it too. Nothing here is trusted: the whole message is checked afterwards.
public struct ControlReassembly: Sendable {
    private var messageNumber: UInt32?
    private var totalLength = 0
    private var partCount = 0
    private var received: [Bool] = []
    private var buffer: [UInt8] = []
    /// Messages abandoned incomplete (a gap or a conflicting part).
    public private(set) var abandoned = 0

    public init() {}

    /// Bytes currently reserved.
    public var heldBytes: Int { buffer.count }

    /// Adds a part; returns the whole message when this part completes it.
    public mutating func add(_ part: ControlPart) -> [UInt8]? {
        if messageNumber != part.messageNumber || totalLength != Int(part.totalLength) || partCount != Int(part.partCount)
            || received[Int(part.partIndex)]
        {
            if messageNumber != nil { abandoned += 1 }
            messageNumber = part.messageNumber
            totalLength = Int(part.totalLength)
            partCount = Int(part.partCount)
            received = [Bool](repeating: false, count: partCount)
            buffer = [UInt8](repeating: 0, count: totalLength)  // ≤ maximumTotalLength: checked by decode
        }
        let start = Int(part.partIndex) * ControlPart.maximumDataLength
        buffer.replaceSubrange(start..<start + part.data.count, with: part.data)
        received[Int(part.partIndex)] = true
        guard received.allSatisfy({ $0 }) else { return nil }
        let whole = buffer
        reset()
        return whole
    }

    /// Drops the message in progress.
    public mutating func reset() {
        messageNumber = nil
        totalLength = 0
        partCount = 0
        received = []
        buffer = []
    }
}
