import SystemPackage

/// Local files through swift-system (no Foundation, no Glibc), so that the same code builds
/// on Linux and macOS: a size that is only a regular file's, reads bounded before anything
/// is allocated past the limit, and whole writes.
public enum LocalFile {
    /// Why a file could not be used. Carries the path and the system's reason; never content.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The size of the regular file at `path`.
    public static func size(of path: String) throws(Failure) -> Int {
        let status: Stat
        do { status = try Stat(FilePath(path)) } catch { throw Failure(path: path, reason: error.description) }
        guard status.type == .regular else { throw Failure(path: path, reason: "not a regular file") }
        return Int(status.size)
    }

    /// The file's bytes, when it holds at most `limit` of them (a longer file is refused
    /// after reading `limit + 1` bytes at the most).
    public static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
        precondition(limit >= 0, "a read limit is not negative")
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly)
            return try fd.closeAfter {
                var out: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: min(65_536, limit + 1))
                while out.count <= limit {
                    let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
                    if n == 0 { break }
                    out += chunk[0..<n]
                }
                guard out.count <= limit else { throw Failure(path: path, reason: "larger than \(limit) bytes") }
                return out
            }
        } catch let failure as Failure {
            throw failure
        } catch let errno as Errno {
            throw Failure(path: path, reason: errno.description)
        } catch {
            throw Failure(path: path, reason: "\(error)")
        }
    }

    /// Writes `bytes` as the whole content of `path` (created with `permissions`, or
    /// truncated).
    public static func write(_ bytes: [UInt8], to path: String, permissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]) throws(Failure) {
        do {
            let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate], permissions: permissions)
            try fd.closeAfter { _ = try fd.writeAll(bytes) }
        } catch let errno as Errno {
            throw Failure(path: path, reason: errno.description)
        } catch {
            throw Failure(path: path, reason: "\(error)")
        }
    }
}

/// This process's own figures from `/proc/self` (or a child's, from `/proc/PID`; Linux); nil where the system has none.
public enum ProcessFigures {
    /// Resident memory: `/proc/self/statm`'s second field, in pages, times the page size.
    public static func residentBytes(pageSize: Int) -> Int? {
        guard let text = procText("statm") else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * pageSize
    }

    /// User plus system CPU time from `/proc/self/stat` (or another process's
    /// `/proc/PID/stat`), in clock ticks.
    public static func cpuTicks(process: Int32? = nil) -> Int? {
        guard let line = procText("stat", process: process), let close = line.lastIndex(of: ")") else { return nil }
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields = line[line.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    private static func procText(_ name: String, process: Int32? = nil) -> String? {
        let directory = process.map { "/proc/\($0)" } ?? "/proc/self"
        guard let bytes = try? LocalFile.read("\(directory)/\(name)", limit: 4_096) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
