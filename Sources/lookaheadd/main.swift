import ArgumentParser
import DaemonConfig
import Dispatch
import Llama
import Lookahead
import LookaheadDaemon
import LookaheadProtocol
import StepBatcher
import SystemdSupport
#if canImport(Glibc)
import Glibc
#endif

struct LookaheadD: ParsableCommand {
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

    func run() throws {
        ThreadWaitPolicy.ensureInEnvironment()
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
        let log = Journal(minimumLevel: Journal.Level(settings.logLevel))
        do {
            try serve(settings, log: log)
        } catch let e as ExitCode {
            throw e
        } catch {
            log.error("cannot start: \(error)")
            Notifier.status("failed: \(error)")
            throw ExitCode(1)
        }
    }

    func serve(_ settings: DaemonConfiguration, log: Journal) throws {
        Notifier.status("loading models")
        let engineConfig = settings.engineConfig()
        log.info("loading models", ["TARGET": engineConfig.targetPath, "DRAFT": engineConfig.draftPath,
                                    "VERIFIER": engineConfig.verifier])
        let t0 = monotonicSeconds()
        let engines = try Engines(config: engineConfig, loadDraft: true)
        log.info("models loaded", ["SECONDS": String(format1(monotonicSeconds() - t0))])

        let batcher = Batcher(engines: engines, limits: BatcherLimits(
            maxSessions: settings.maxSessions, maxBatchSessions: settings.maxBatchSessions))
        if let interval = Notifier.watchdogInterval {
            batcher.heartbeatInterval = Double(interval.components.seconds) + Double(interval.components.attoseconds) * 1e-18
            batcher.heartbeat = { Notifier.watchdog() }
        }
        let environment = processEnvironment()
        let jobs = JobRunner(
            directory: StateDirectory.resolve(configured: settings.stateDirectory, environment: environment),
            batcher: batcher, config: settings, clock: try JobClock(environment: environment), log: log)
        let service = Service(config: settings, engines: engines, batcher: batcher, jobs: jobs)
        batcher.start()
        service.startJobs()

        let listener: Listener
        let activated = try SocketActivation.listenFileDescriptors()
        if let fd = activated.first {
            listener = .activated(fd: fd)
        } else {
            let path = settings.socket.isEmpty ? SocketPath.daemonDefault(environment: environment) : settings.socket
            listener = .path(path, mode: settings.socketMode)
        }
        let server = try Server(service: service, listener: listener, maxFrameBytes: settings.maxFrameBytes)
        log.info("listening", ["SOCKET": server.description])
        Notifier.ready()

        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        let statusTimer = DispatchSource.makeTimerSource(queue: .global())
        statusTimer.schedule(deadline: .now() + 5, repeating: 5)
        statusTimer.setEventHandler {
            let s = batcher.status
            Notifier.status("\(s.activeSessions) active, \(s.queuedInteractive + s.queuedBatch) queued, \(s.generatedTokens) tokens generated")
        }
        statusTimer.resume()

        stop.wait()
        statusTimer.cancel()
        Notifier.stopping()
        log.notice("stopping", ["GRACE_SECONDS": String(format1(settings.shutdownGraceSeconds))])
        server.stopAccepting()
        jobs.stopFeeding()
        batcher.shutdown(grace: settings.shutdownGraceSeconds)
        jobs.close()
        server.shutdown()
        log.info("stopped")
        _ = sources
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

extension Journal.Level {
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

LookaheadD.main()
