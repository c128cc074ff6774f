#if canImport(Glibc)
import Glibc
#endif
import ConclaveChildProcess
import ConclaveSystem
import NIOCore

/// The C reference forwarder of `conclave bench relay --baseline` (issue 14), built from
/// `Benchmarks/ReferenceForwarder/forwarder.c` with the system C compiler and run as a
/// child process: `recvmmsg` plus a `sendmmsg` fan-out, no authentication and no policy.
/// The relay's CPU per forwarded packet is compared with its CPU per forwarded packet,
/// measured in the same run by the same generator and receivers.
public final class ReferenceForwarder: Sendable {
    /// Where the forwarder listens (127.0.0.1).
    public let address: SocketAddress
    let process: ChildProcess

    /// The registration datagram (12 bytes): "CFWD", room and member, both big endian.
    public static func registration(room: UInt32, member: UInt32) -> [UInt8] {
        Array("CFWD".utf8) + withUnsafeBytes(of: room.bigEndian, Array.init) + withUnsafeBytes(of: member.bigEndian, Array.init)
    }
    /// The forwarder's answer to a registration starts with these 4 bytes (8 in all).
    public static let registrationAnswer: [UInt8] = Array("CFOK".utf8)
    public static let registrationAnswerLength = 8

    private init(address: SocketAddress, process: ChildProcess) {
        self.address = address
        self.process = process
    }

    /// What stopped the forwarder from being built or started.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The source file: `explicit` when given, else `Benchmarks/ReferenceForwarder/forwarder.c`
    /// under the working directory, above the executable (`.build/release/conclave`) or in
    /// the checkout this file was built from.
    public static func locateSource(explicit: String?) throws(Failure) -> String {
        if let explicit {
            guard access(explicit, R_OK) == 0 else { throw Failure(description: "cannot read the reference forwarder's source at \(explicit)") }
            return explicit
        }
        let relative = "Benchmarks/ReferenceForwarder/forwarder.c"
        var candidates = [relative]
        var directory = CommandLine.arguments[0]
        for _ in 0..<4 {
            directory = parent(of: directory)
            candidates.append(directory.isEmpty ? relative : "\(directory)/\(relative)")
        }
        // Sources/ConclaveLoad/ReferenceForwarder.swift → the checkout's root.
        let root = parent(of: parent(of: parent(of: #filePath)))
        candidates.append("\(root)/\(relative)")
        guard let found = candidates.first(where: { access($0, R_OK) == 0 }) else {
            throw Failure(
                description: "cannot find \(relative) (run from the repository, or pass --baseline-source); looked in: "
                    + candidates.joined(separator: ", "))
        }
        return found
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    /// The C compiler: `$CC` when set, else `cc` (or the Swift toolchain's `clang`) on the `PATH`.
    static func compiler() throws(Failure) -> String {
        if let cc = getenv("CC").map({ String(cString: $0) }), !cc.isEmpty {
            if cc.contains("/") { return cc }
            if let found = searchPath(cc) { return found }
        }
        guard let found = searchPath("cc") ?? searchPath("clang") else {
            throw Failure(description: "no C compiler: neither `cc` nor `clang` is on the PATH and CC is not set (apt-get install gcc)")
        }
        return found
    }

    private static func searchPath(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// Compiles `source` with `cc -O2` into a fresh temporary directory; returns the binary.
    public static func build(source: String) async throws -> String {
        let cc = try compiler()
        var template = Array("/tmp/conclave-forwarder-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(description: "cannot create a temporary directory for the reference forwarder")
        }
        let binary = String(cString: made) + "/forwarder"
        let compile = try await ChildProcess.launch(cc, arguments: ["-O2", "-Wall", "-o", binary, source])
        let exit = await compile.waitForExit()
        guard exit == .exited(0) else {
            throw Failure(description: "\(cc) could not build \(source) (\(exit)): \(compile.standardError.suffix(1_000))")
        }
        return binary
    }

    /// Starts `binary` on a free loopback port; returns once it has printed the port.
    public static func start(binary: String, deadline: Duration = .seconds(10)) async throws -> ReferenceForwarder {
        let process = try await ChildProcess.launch(binary, arguments: [])
        let until = ContinuousClock.now + deadline
        while ContinuousClock.now < until {
            let out = process.standardOutput
            if let line = out.split(separator: "\n").first, line.hasPrefix("port "), let port = Int(line.dropFirst(5)) {
                return ReferenceForwarder(address: try SocketAddress(ipAddress: "127.0.0.1", port: port), process: process)
            }
            if let exit = process.exit {
                throw Failure(description: "the reference forwarder ended (\(exit)) before listening: \(process.standardError.suffix(500))")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.signal(SIGKILL)
        await process.waitForExit()
        throw Failure(description: "the reference forwarder did not print its port within \(deadline)")
    }

    /// Its CPU time so far (user + system, from `/proc/PID/stat`), in seconds.
    public var cpuSeconds: Double? {
        ProcessFigures.cpuTicks(process: process.processIdentifier).map { Double($0) / Double(sysconf(Int32(_SC_CLK_TCK))) }
    }

    /// SIGTERM, then waits; returns the forwarder's closing line ("forwarded N received M dropped D").
    @discardableResult
    public func stop() async -> String {
        if process.isRunning { process.signal(SIGTERM) }
        await process.waitForExit()
        return process.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
    }
}
