#if canImport(Glibc)
import Glibc
#endif

/// Minimal POSIX file access for shares (no Foundation in the session).
enum FileManagerLite {
    static func size(of path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw SessionError.refused(.notAllowed, "not a readable file") }
        return Int(st.st_size)
    }

    static func read(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while out.count <= limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 65_536) }
            if n < 0 { return nil }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out.count <= limit ? out : nil
    }

    static func write(_ bytes: [UInt8], to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}
