import ArgumentParser
import Logging
import ServiceLifecycle
import ConclaveRelay
import ConclaveRedis
import NIOPosix
import ConclaveSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct ConclaveRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conclave-relay",
        abstract: "The Conclave relay: forwards end-to-end encrypted frames and enforces the meeting's rules. It holds no content key.",
        discussion: """
            Every option can also be set in a JSON config file (--config FILE, a flat object of \
            option names) or in the environment as CONCLAVE_RELAY_<NAME> (upper case, '-' as '_'). \
            Precedence: defaults < file < environment < flags.

            Options and their defaults:
            \(optionList)
            """
    )

    /// Every option of the table, its default and its help, for `--help`.
    static var optionList: String {
        let defaults = RelayConfiguration().summary
        return RelayConfiguration.options.map { o in
            let d = defaults.first { $0.name == o.name }?.value ?? ""
            return "  --\(o.name) (default \(d))\n      \(o.help)"
        }.joined(separator: "\n")
    }

    @Option(help: "JSON config file with any of the options below.")
    var config: String?

    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:7443).") var listen: String?
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain for wss://.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Flag(name: .customLong("allow-plaintext"), help: "Allow plaintext on a non-loopback address.") var allowPlaintext = false
    @Option(name: .customLong("log-level"), help: "How much to log (default info).") var logLevel: RelayConfiguration.LogLevel?
    @Option(name: .customLong("set"), parsing: .singleValue, help: "NAME=VALUE for any option in the list below (repeatable).")
    var settings: [String] = []
    @Option(help: "redis://HOST:PORT: run as a node of the cluster sharing this Redis (README \"Running a cluster\").") var cluster: String?
    @Option(name: .customLong("node-id"), help: "This node's id in the cluster (default: random).") var nodeID: String?
    @Option(help: "ws[s]://HOST:PORT clients are redirected to for this node (default: the listen address).") var advertise: String?
    @Option(name: .customLong("cluster-key-file"), help: "The cluster key file (32+ bytes, the same on every node).") var clusterKeyFile: String?
    @Option(help: "With --cluster: ask the running node with this id to drain (its clients move to other nodes, then it exits), and return.")
    var drain: String?

    func run() async throws {
        var configuration = RelayConfiguration()
        do {
            if let config {
                let bytes: [UInt8]
                do { bytes = try LocalFile.read(config, limit: RelayConfiguration.maximumFileBytes) } catch {
                    throw RelayConfigurationError.badFile(path: config, reason: error.reason)
                }
                try configuration.applyJSONFile(contents: bytes, path: config)
            }
            try configuration.applyEnvironment(currentEnvironment())
            if let listen { try configuration.set("listen", to: listen) }
            if let tlsCert { try configuration.set("tls-cert", to: tlsCert) }
            if let tlsKey { try configuration.set("tls-key", to: tlsKey) }
            if allowPlaintext { configuration.allowPlaintext = true }
            if let logLevel { configuration.logLevel = logLevel }
            if let cluster { try configuration.set("cluster", to: cluster) }
            if let nodeID { try configuration.set("node-id", to: nodeID) }
            if let advertise { try configuration.set("advertise", to: advertise) }
            if let clusterKeyFile { try configuration.set("cluster-key-file", to: clusterKeyFile) }
            for item in settings {
                guard let eq = item.firstIndex(of: "=") else {
                    throw RelayConfigurationError.invalidValue(option: "set", value: item, expected: "NAME=VALUE")
                }
                try configuration.set(String(item[..<eq]), to: String(item[item.index(after: eq)...]))
            }
            if let drain {
                guard let url = configuration.clusterRedisURL else {
                    throw RelayConfigurationError.invalidValue(option: "drain", value: drain, expected: "--cluster redis://HOST:PORT as well")
                }
                try await requestDrain(of: drain, url: url)
                return
            }
            try configuration.validate()
        } catch let error as RelayConfigurationError {
            printError("conclave-relay: \(error)")
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: configuration.logLevel.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "conclave.relay")
        let server: RelayServer
        do {
            server = try RelayServer(configuration: configuration, logger: logger)
        } catch {
            printError("conclave-relay: \(error)")
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: .init(
                // A drain request (`--drain`, through the cluster) ends the relay's run by
                // itself: that is a clean stop of the whole group, not a failure.
                services: [.init(service: RelayService(server: server), successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch let error as RelayServerError {
            printError("conclave-relay: \(error)")
            throw ExitCode(1)
        }
    }
}

/// Publishes a drain request for `node` on the cluster's bus.
func requestDrain(of node: String, url: String) async throws {
    let endpoint: RedisEndpoint
    do { endpoint = try RedisEndpoint(url: url) } catch {
        printError("conclave-relay: \(error)")
        throw ExitCode(2)
    }
    let client = RedisClient(
        configuration: RedisClientConfiguration(endpoint: endpoint, commandTimeout: .seconds(3)),
        group: MultiThreadedEventLoopGroup.singleton)
    client.start()
    defer { Task { await client.shutdown() } }
    do {
        let listeners = try await client.send(RedisCommand("PUBLISH", ["conclave:events", "drain " + node])).integer ?? 0
        guard listeners > 0 else {
            printError("conclave-relay: no node is listening on \(endpoint); is the cluster up?")
            throw ExitCode(1)
        }
        print("asked node \(node) to drain (\(listeners) node(s) heard it)")
    } catch let error as RedisError {
        printError("conclave-relay: \(error)")
        throw ExitCode(1)
    }
}

func printError(_ text: String) {
    var line = Array((text + "\n").utf8)
    line.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}

func currentEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return env
}

/// `--log-level` takes the configuration's own values; a wrong one is refused with the list.
extension RelayConfiguration.LogLevel: ExpressibleByArgument {}
