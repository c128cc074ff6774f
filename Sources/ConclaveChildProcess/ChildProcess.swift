#if canImport(Glibc)
import Glibc
#endif
import Subprocess
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A child process that runs until it exits or is stopped, on swiftlang/swift-subprocess:
/// the demo's and `bench relay`'s `conclave-relay`, and the tests' relays, Redis servers
/// and `conclave` participants.
///
/// Subprocess scopes a process's life to the body of its `run`. This type runs that body
/// in a task of its own, so that its owner can hold the process across calls. The body
/// drains standard output and standard error concurrently, keeping the newest
/// ``retainedBytes`` of each (a chatty child never blocks on a full pipe, and memory stays
/// bounded); it writes what ``write(_:)`` queues to standard input and sends the signals
/// asked for. The process is gone, and reaped, once ``waitForExit()`` returns.
public final class ChildProcess: Sendable {
    /// How a finished process ended.
    public enum Exit: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// Why a process could not be started.
    public struct LaunchFailure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Bytes of standard output and of standard error kept (the newest).
    public static let retainedBytes = 1 << 20

    private enum Command: Sendable {
        case write([UInt8])
        case closeInput
    }

    fileprivate struct Captured {
        var standardOutput: [UInt8] = []
        var standardError: [UInt8] = []
        var exit: Exit?

        static func append(_ bytes: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
            buffer += bytes
            // Trimmed once it holds twice the limit, not on every chunk past it: a chatty
            // child costs one copy per `retainedBytes` written, not one per chunk.
            if buffer.count > 2 * ChildProcess.retainedBytes { buffer.removeFirst(buffer.count - ChildProcess.retainedBytes) }
        }
    }

    /// The child's process id (for signals from elsewhere, and for `gcore`).
    public let processIdentifier: Int32
    private let captured: Shared
    private let commands: AsyncStream<Command>.Continuation
    private let runner: Task<Void, Never>

    private init(processIdentifier: Int32, captured: Shared, commands: AsyncStream<Command>.Continuation, runner: Task<Void, Never>) {
        self.processIdentifier = processIdentifier
        self.captured = captured
        self.commands = commands
        self.runner = runner
    }

    /// Starts `path` with `arguments`; returns once the process exists.
    public static func launch(_ path: String, arguments: [String]) async throws -> ChildProcess {
        let captured = Shared()
        let (stream, continuation) = AsyncStream<Command>.makeStream(bufferingPolicy: .unbounded)
        let started = AsyncStream<Result<Int32, LaunchFailure>>.makeStream()
        let runner = Task {
            do {
                let result = try await run(
                    .path(FilePath(path)), arguments: Arguments(arguments),
                    input: .inputWriter, output: .sequence, error: .sequence
                ) { execution in
                    started.continuation.yield(.success(execution.processIdentifier.value))
                    let served = Task {
                        for await command in stream {
                            switch command {
                            case .write(let bytes): _ = try? await execution.standardInputWriter.write(bytes)
                            case .closeInput: try? await execution.standardInputWriter.finish()
                            }
                        }
                    }
                    async let out: Void = drain(execution.standardOutput) { bytes in captured.state.withLock { Captured.append(bytes, to: &$0.standardOutput) }
                    }
                    async let err: Void = drain(execution.standardError) { bytes in captured.state.withLock { Captured.append(bytes, to: &$0.standardError) } }
                    _ = await (out, err)
                    served.cancel()
                    _ = await served.result
                }
                let exit: Exit
                switch result.terminationStatus {
                case .exited(let code): exit = .exited(code)
                case .signaled(let signal): exit = .signaled(signal)
                }
                captured.state.withLock { $0.exit = exit }
            } catch {
                started.continuation.yield(.failure(LaunchFailure(description: "cannot start \(path): \(error)")))
                captured.state.withLock { $0.exit = .exited(-1) }
            }
            started.continuation.finish()
        }
        var iterator = started.stream.makeAsyncIterator()
        guard let first = await iterator.next() else { throw LaunchFailure(description: "cannot start \(path)") }
        let pid = try first.get()
        return ChildProcess(processIdentifier: pid, captured: captured, commands: continuation, runner: runner)
    }

    private static func drain(_ sequence: SubprocessOutputSequence, into sink: (UnsafeRawBufferPointer) -> Void) async {
        do {
            for try await buffer in sequence { buffer.withUnsafeBytes { sink($0) } }
        } catch {
            // The pipe closed with an error: the process is going; nothing more to keep.
        }
    }

    /// Writes `bytes` to the child's standard input (in order, after earlier writes).
    public func write(_ bytes: [UInt8]) { commands.yield(.write(bytes)) }
    /// Ends the child's standard input.
    public func closeInput() { commands.yield(.closeInput) }
    /// Sends a signal (SIGTERM, SIGKILL, ...) while the process runs. At once, from the
    /// caller's thread, not through the runner's task: an owner that goes away as its own
    /// process ends (a test run finishing) must still stop its child. Through the task, the
    /// SIGKILL of a deinit was queued and never sent, and the child outlived the tests.
    public func signal(_ number: Int32) {
        captured.state.withLock { state in
            // Only while no exit is recorded. The child is reaped just before its exit is
            // recorded: a window far too short for its id to be handed to another process.
            guard state.exit == nil else { return }
            _ = kill(processIdentifier, number)
        }
    }

    /// Standard output so far (its newest ``retainedBytes``), as text.
    public var standardOutput: String { captured.state.withLock { String(decoding: $0.standardOutput.suffix(ChildProcess.retainedBytes), as: UTF8.self) } }
    /// Standard error so far (its newest ``retainedBytes``), as text.
    public var standardError: String { captured.state.withLock { String(decoding: $0.standardError.suffix(ChildProcess.retainedBytes), as: UTF8.self) } }
    /// How it ended; nil while it runs.
    public var exit: Exit? { captured.state.withLock { $0.exit } }
    public var isRunning: Bool { exit == nil }

    /// Waits until the process has exited and been reaped; returns how it ended.
    @discardableResult
    public func waitForExit() async -> Exit {
        await runner.value
        return exit ?? .exited(-1)
    }
}

extension ChildProcess {
    /// What the runner task writes and the owner reads.
    fileprivate final class Shared: Sendable {
        let state = Mutex(Captured())
    }
}
