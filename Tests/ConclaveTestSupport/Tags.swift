import Foundation
import Testing

extension Tag {
    /// Suites that run live relays, sockets and child processes (seconds each, not
    /// milliseconds). The quick local loop skips them; CI runs everything.
    @Tag public static var integration: Self
}

extension Trait where Self == ConditionTrait {
    /// With the `integration` tag on a live suite: `CONCLAVE_TEST_QUICK=1 swift test` skips
    /// it (Swift 6.3's `swift test` cannot yet filter by tag; with a toolchain whose Swift
    /// Testing has ST-0025, `swift test --skip tag:integration` does the same).
    public static var live: Self {
        .enabled(
            if: ProcessInfo.processInfo.environment["CONCLAVE_TEST_QUICK"] == nil,
            "CONCLAVE_TEST_QUICK is set: the quick loop skips the live suites")
    }
}
