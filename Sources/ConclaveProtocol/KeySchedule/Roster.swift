import ConclaveCrypto

/// A roster member as the key schedule sees it: an index, an identity, and the join nonce
/// of its knock (4.2; empty where not known, e.g. the leader before a new member's roster).
public struct RosterMember: Sendable, Hashable {
    public let index: UInt16
    public let identity: PublicIdentity
    public let joinNonce: [UInt8]

    public init(index: UInt16, identity: PublicIdentity, joinNonce: [UInt8] = []) {
        self.index = index
        self.identity = identity
        self.joinNonce = joinNonce
    }
}

/// An epoch's members for lookup by index: the roster's entries in increasing index
/// order, shared copy-on-write with the verified roster instead of copied into a
/// dictionary (a 500-member room's members then install an epoch without building one
/// each), found by binary search, less the members revoked since.
public struct MemberTable: Sendable {
    private var entries: [SignedRoster.Entry]
    private var revoked: Set<UInt16> = []

    /// The entries of a verified roster (already in increasing index order).
    public init(entries: [SignedRoster.Entry]) { self.entries = entries }

    /// Members (any order; a join nonce may be empty where none is known).
    public init(_ members: [RosterMember]) {
        entries = members.sorted { $0.index < $1.index }.map {
            SignedRoster.Entry(unchecked: $0.index, identity: $0.identity, joinNonce: $0.joinNonce)
        }
    }

    private func position(of index: UInt16) -> Int? {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].index < index { lo = mid + 1 } else { hi = mid }
        }
        return lo < entries.count && entries[lo].index == index ? lo : nil
    }

    public func contains(_ index: UInt16) -> Bool { position(of: index) != nil && (revoked.isEmpty || !revoked.contains(index)) }

    public func member(_ index: UInt16) -> RosterMember? {
        guard let p = position(of: index), revoked.isEmpty || !revoked.contains(index) else { return nil }
        return entries[p].member
    }

    /// The member's identity, unless it is absent or revoked.
    public subscript(index: UInt16) -> PublicIdentity? {
        guard let p = position(of: index), revoked.isEmpty || !revoked.contains(index) else { return nil }
        return entries[p].identity
    }

    /// Every member not revoked, in index order.
    public var members: [RosterMember] { entries.filter { revoked.isEmpty || !revoked.contains($0.index) }.map(\.member) }

    public mutating func revoke(_ index: UInt16) { revoked.insert(index) }

    /// Whether `index` is in this table and was revoked (removed by a later verified roster).
    public func wasRevoked(_ index: UInt16) -> Bool { !revoked.isEmpty && revoked.contains(index) && position(of: index) != nil }

}

/// The roster hash and the security code (protocol/PROTOCOL.md sections 3.5 and 4.3).
public enum RosterHash {
    /// `SHA-256("conclave/v1 roster" || room_id || u16(n) || for each member in increasing
    /// index order: u16(index) || ed25519 (32) || x25519 (32))`.
    public static func compute(roomID: RoomID, members: [RosterMember]) -> [UInt8] {
        let inOrder = zip(members, members.dropFirst()).allSatisfy { $0.index < $1.index }
        let sorted = inOrder ? members : members.sorted { $0.index < $1.index }
        let label = Labels.rosterHash.utf8
        // One buffer, filled in place: a 500-member roster hashes 33 kB without a copy per member.
        var input: [UInt8] = []
        input.reserveCapacity(label.count + 16 + 2 + sorted.count * 66)
        input += label
        input += roomID.bytes
        input.append(UInt8(truncatingIfNeeded: sorted.count >> 8))
        input.append(UInt8(truncatingIfNeeded: sorted.count))
        for m in sorted {
            input.append(UInt8(truncatingIfNeeded: m.index >> 8))
            input.append(UInt8(truncatingIfNeeded: m.index))
            input += m.identity.signingKey.rawRepresentation
            input += m.identity.agreementKey.rawRepresentation
        }
        return SHA2.sha256(input)
    }
}

/// The security code everyone compares aloud: 30 digits in six groups of five.
///
/// ```
/// d = SHA-512("conclave/v2 security-code" || room_id || leader_ed25519 || roster_hash || chain_head)
/// group i (0…5) = big-endian integer of d[5i ..< 5i+5] mod 100000, as five digits
/// ```
/// Any change to the room, the leader's key, any member's identity keys, or the history of
/// signed rosters (the chain head, 3.6) changes the code, so a relay that substitutes a key
/// or shows two members different histories shows up as a mismatch.
public struct SecurityCode: Sendable, Hashable, CustomStringConvertible {
    public let groups: [String]

    public init(roomID: RoomID, leader: Ed25519.PublicKey, rosterHash: [UInt8], chainHead: [UInt8]) {
        precondition(chainHead.count == 32, "chain heads are 32 bytes")
        let d = SHA2.sha512(Array(Labels.securityCode.utf8) + roomID.bytes + leader.rawRepresentation + rosterHash + chainHead)
        var groups: [String] = []
        for i in 0..<6 {
            var v: UInt64 = 0
            for b in d[(5 * i)..<(5 * i + 5)] { v = v << 8 | UInt64(b) }
            let s = String(v % 100_000)
            groups.append(String(repeating: "0", count: 5 - s.count) + s)
        }
        self.groups = groups
    }

    /// e.g. `04211 93857 00017 58210 77301 12964`
    public var description: String { groups.joined(separator: " ") }
}
