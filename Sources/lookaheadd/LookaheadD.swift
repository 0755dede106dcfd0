import ArgumentParser
import DaemonConfig
import Llama
import Logging
import Lookahead
import LookaheadDaemon
import LookaheadProtocol
import StepBatcher
import ServiceLifecycle
import SystemdSupport
#if canImport(Glibc)
import Glibc
#endif

@main
struct LookaheadD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookaheadd",
        abstract: "Serve Lookahead Reasoning over a Unix socket: draft and target models stay loaded, one batcher packs every session's steps.",
        discussion: """
        With no flags it runs on the cached default models (`make models`) and listens on \
        $XDG_RUNTIME_DIR/lookaheadd/lookaheadd.sock, or ~/.cache/lookaheadd/lookaheadd.sock. Under systemd it takes \
        the socket from socket activation and reports readiness, status and watchdog beats.
        Exit status: 0 after SIGTERM/SIGINT, 1 when it cannot start (model, socket), 78 on a bad configuration.
        """)

    @Option(help: "Configuration file (see etc/lookaheadd.conf).") var config: String?
    @Option(help: "Socket path (overrides the config's `socket`).") var socket: String?
    @Option(name: .customLong("state-dir"), help: "State directory (overrides the config's `state_dir`).") var stateDir: String?
    @Option(name: .customLong("log-level"), help: "debug | info | notice | warning | error (overrides the config's `log_level`).")
    var logLevel: DaemonConfiguration.LogLevel?

    /// The re-execution for the thread wait policy happens here, on the main thread before any
    /// other exists: an exec from another thread loses what the kernel ties to the main one, such
    /// as the parent-death signal a supervisor set (`setpriv --pdeathsig`).
    static func main() async {
        ThreadWaitPolicy.ensureInEnvironment()
        await main(nil)
    }

    func run() async throws {
        var settings: DaemonConfiguration
        do {
            settings = try config.map { try DaemonConfiguration.load(path: $0) } ?? DaemonConfiguration()
        } catch {
            let line = Array("lookaheadd: \(error)\n".utf8)
            _ = write(2, line, line.count)
            throw ExitCode(78)
        }
        if let socket { settings.socket = socket }
        if let stateDir { settings.stateDirectory = stateDir }
        if let logLevel { settings.logLevel = logLevel }
        let journal = Journal(minimumLevel: .debug)
        let level = Logger.Level(settings.logLevel)
        LoggingSystem.bootstrap { JournalLogHandler(label: $0, journal: journal, logLevel: level) }
        let log = Logger(label: "lookaheadd")
        let services: [any Service]
        do {
            services = try start(settings, log: log)
        } catch {
            log.error("cannot start: \(error)")
            Notifier.status("failed: \(error)")
            throw ExitCode(1)
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: log))
        try await group.run()
        log.info("stopped")
    }

    /// Loads the models and binds the socket: everything that can fail at start fails here, before
    /// systemd hears READY=1.
    func start(_ settings: DaemonConfiguration, log: Logger) throws -> [any Service] {
        let network = Network()
        let gate = ConnectionGate(limits: settings.connectionLimits)
        var http: HTTPServer?
        if !settings.httpListen.isEmpty {
            let key = try settings.apiKeyFile.isEmpty ? nil : APIKey.read(settings.apiKeyFile)
            http = try HTTPServer(endpoints: settings.httpListen, socketMode: settings.socketMode, apiKey: key,
                                  limits: settings.connectionLimits, gate: gate, network: network)
            log.notice("HTTP listening (answers 503 until the models are loaded)", metadata: [
                "http": "\(http!.description)", "api_key": "\(key == nil ? "none: loopback only" : settings.apiKeyFile)",
            ])
        }
        Notifier.status("loading models")
        let engineConfig = settings.engineConfig()
        log.info("loading models", metadata: ["target": "\(engineConfig.targetPath)", "draft": "\(engineConfig.draftPath)",
                                              "verifier": "\(engineConfig.verifier)"])
        let t0 = monotonicSeconds()
        let engines = try Engines(config: engineConfig, loadDraft: true)
        log.info("models loaded", metadata: ["seconds": "\(format1(monotonicSeconds() - t0))"])

        var heartbeat = Heartbeat()
        if let interval = Notifier.watchdogInterval {
            heartbeat = Heartbeat(interval: Double(interval.components.seconds) + Double(interval.components.attoseconds) * 1e-18,
                                  beat: { Notifier.watchdog() })
        }
        // A long prefill still lets the watchdog hear the engine between chunks.
        engines.target.afterChunk = heartbeat.beat
        engines.draft?.afterChunk = heartbeat.beat
        let metrics = DaemonMetrics()
        let batcher = Batcher(scheduler: engines.makeScheduler(limits: settings.limits, prefixCacheCells: settings.prefixCacheCells), heartbeat: heartbeat, metrics: metrics.requests)
        let targetModel = engines.targetModel
        let ownTokensDraft = engines.sharesVocabulary ? nil : engines.draftModel
        let asks = AskPreparer(defaults: settings.sessionDefaults(), maxTokensLimit: settings.maxTokensLimit,
                               maxPromptTokens: settings.maxPromptTokens,
                               maxBytesPerToken: targetModel.vocab.maxBytesPerToken(), defaultVerifier: engineConfig.verifier.kind,
                               capacity: batcher.capacity) { try Engines.prompt($0, target: targetModel, draft: ownTokensDraft) }
        let environment = processEnvironment()
        let modelID = Methods.servedID(Methods.modelName(targetModel))
        let jobs = JobRunner(
            directory: StateDirectory.resolve(configured: settings.stateDirectory, environment: environment),
            batcher: batcher, asks: asks, model: modelID, config: settings,
            clock: try JobClock(environment: environment))
        let methods = Methods(config: settings, models: Methods.describe(engines), modelID: modelID, batcher: batcher, jobs: jobs, asks: asks,
                              connections: gate, metrics: metrics)

        let listener: Listener
        let activated = try SocketActivation.listenFileDescriptors()
        if let fd = activated.first {
            listener = .activated(fd: fd)
        } else {
            let path = settings.socket.isEmpty ? SocketPath.daemonDefault(environment: environment) : settings.socket
            listener = .path(path, mode: settings.socketMode)
        }
        let server = try Server(service: methods, listener: listener, network: network)
        log.info("listening", metadata: ["socket": "\(server.description)"])
        http?.serve(methods)
        return DaemonLifecycle.services(network: network, server: server, http: http, batcher: batcher, jobs: jobs,
                                        grace: settings.shutdownGraceSeconds)
    }
}

/// The bearer token of `api_key_file`: its first line, which must not be empty.
enum APIKey {
    static func read(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else {
            throw ServerError("api_key_file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        guard getline(&line, &capacity, file) > 0, let line else { throw ServerError("api_key_file \(path): the file is empty") }
        let key = String(cString: line).trimmingWhitespace
        guard !key.isEmpty else { throw ServerError("api_key_file \(path): the first line is empty") }
        return key
    }
}

func processEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return env
}

func format1(_ x: Double) -> String { String(Double(Int(x * 10)) / 10) }

extension Logger.Level {
    init(_ level: DaemonConfiguration.LogLevel) {
        switch level {
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}

extension DaemonConfiguration.LogLevel: ExpressibleByArgument {}
