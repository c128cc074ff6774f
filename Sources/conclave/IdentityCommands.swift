import ArgumentParser
import ConclaveClient
import ConclaveProtocol

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new long-term identity (Ed25519 + X25519) to a file with mode 0600. Never overwrites."
    )

    @Option(help: "Where to write the identity.")
    var out: String

    func run() throws {
        do {
            let identity = try IdentityFile.generate(at: out)
            print("wrote \(out)")
            print("fingerprint \(identity.publicIdentity.fingerprint.displayString)")
        } catch {
            throw CLIError(error.description)
        }
    }
}

struct FingerprintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fingerprint",
        abstract: "Print the fingerprint of an identity file."
    )

    @Argument(help: "An identity file written by `conclave keygen`.")
    var file: String

    func run() throws {
        do {
            print(try IdentityFile.load(from: file).publicIdentity.fingerprint.displayString)
        } catch {
            throw CLIError(error.description)
        }
    }
}

/// A failure reported as one clear line and exit code 1, without a stack trace.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
