import NIOCore

extension EventLoopFuture where Value: Sendable {
    /// The future's value, like NIO's `get()`, but awaited on the caller's executor
    /// (its `isolation` parameter): a ``Participant`` running on the future's event loop
    /// waits and resumes on that loop, with no hop to Swift's global executor and back.
    func value(isolation: isolated (any Actor)? = #isolation) async throws -> Value {
        try await withUnsafeThrowingContinuation { continuation in
            whenComplete { continuation.resume(with: $0) }
        }
    }
}
