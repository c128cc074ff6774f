/// Waiting for an event with a deadline, never "sleep, then assert".

/// A wait that reached its deadline without the event.
public struct TestTimeout: Error, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` every 10 ms until it holds or `within` has passed; returns whether
/// it held (a last check is made at the deadline).
public func eventually(within: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + within
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Waits for `condition` with a deadline; throws ``TestTimeout`` naming `what` when it
/// does not come.
public func waitUntil(_ what: String, within: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws {
    guard try await eventually(within: within, condition) else { throw TestTimeout(what: what) }
}

/// Runs `body`, throwing ``TestTimeout`` if it takes longer than `limit` (the body is
/// cancelled then).
public func withTimeout<T: Sendable>(
    _ limit: Duration, _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TestTimeout(what: "\(what) (more than \(limit))")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
