import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs the `lookaheadctl` built beside this test bundle, with LOOKAHEAD_SOCKET cleared unless
/// `environment` sets it. As another uid (through setpriv) when `uid` is given, with `tools`
/// holding a copy of it and its libraries that such a user can read. `during` acts while it runs.
public func lookaheadctl(_ arguments: [String], stdin: String = "", environment: [String: String] = [:],
                         as uid: UInt32? = nil, tools: ClientTools? = nil, timeout: Double = 120,
                         during: (Process) throws -> Void = { _ in }) throws -> Outcome {
    let binary = tools?.binary ?? DaemonProcess.binaries.appendingPathComponent("lookaheadctl").path
    try requireFile(binary, "build it first (`make build`, or `swift build --build-tests`)")
    var env = ProcessInfo.processInfo.environment
    env["LOOKAHEAD_SOCKET"] = nil
    if let tools { env["LD_LIBRARY_PATH"] = tools.libraries }
    env.merge(environment) { $1 }
    let credentials = uid.map { ["--reuid=\($0)", "--regid=\($0)", "--clear-groups"] } ?? []
    return try runCommand(binary, arguments, stdin: stdin, environment: env, setprivOptions: credentials,
                          timeout: timeout, during: during)
}

/// lookaheadctl and the llama.cpp libraries it links, copied where any user can read them: the
/// build cache may sit under a home directory others cannot enter.
public struct ClientTools: Sendable {
    public let binary: String
    public let libraries: String

    public init(in sandbox: Sandbox) throws {
        let fm = FileManager.default
        let lib = sandbox.path + "/lib"
        try fm.createDirectory(atPath: lib, withIntermediateDirectories: true)
        let source = (ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
            .first { fm.fileExists(atPath: $0 + "/libllama.so.0") }
        guard let directory = source else { throw TestFailure("no libllama.so.0 on LD_LIBRARY_PATH (run the tests through `make test`)") }
        for name in try fm.contentsOfDirectory(atPath: directory)
        where name == "libllama.so.0" || (name.hasPrefix("libggml") && name.hasSuffix(".so.0")) {
            // Data(contentsOf:) follows the versioned symlinks to the files themselves.
            try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)).write(to: URL(fileURLWithPath: lib + "/" + name))
        }
        binary = sandbox.path + "/lookaheadctl"
        try fm.copyItem(atPath: DaemonProcess.binaries.appendingPathComponent("lookaheadctl").path, toPath: binary)
        libraries = lib
        for path in [sandbox.path, lib] { chmod(path, 0o755) }
        for name in try fm.contentsOfDirectory(atPath: lib) { chmod(lib + "/" + name, 0o644) }
        chmod(binary, 0o755)
    }
}
