import ConclaveMedia

/// The tests' one seedable generator is the product's own SplitMix64 (ConclaveMedia):
/// the same seed gives the same inputs on every run and platform, so failures reproduce.
public typealias SplitMix64 = ConclaveMedia.SplitMix64

extension ConclaveMedia.SplitMix64 {
    /// `n` bytes from the generator.
    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &self) } }
}
