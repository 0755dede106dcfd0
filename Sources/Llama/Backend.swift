import CLlama
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Errors from the engine wrapper. Every one carries the path, size or call at fault.
public enum LlamaError: Error, CustomStringConvertible, Equatable {
    case modelNotFound(path: String)
    case notGGUF(path: String)
    case modelLoadFailed(path: String)
    case contextCreationFailed(String)
    case contextTooLarge(requested: Int, trained: Int)
    case batchFull(capacity: Int)
    case tooManySequences(seq: Int32, max: Int)
    case decodeFailed(code: Int32, tokens: Int)
    case noKVSlot(tokens: Int)
    case kvCompactionFailed(bytes: Int)
    case noLogits(index: Int)
    case tokenizeFailed(String)
    case chatTemplate(String)
    case notAnEmbeddingModel(String)
    /// An `rpc-server` that is down, unreachable or lost mid-run.
    case rpcServer(endpoint: String, reason: String)

    public var description: String {
        switch self {
        case .modelNotFound(let p): return "model file not found: \(p)"
        case .notGGUF(let p): return "not a GGUF model file (bad magic or truncated header): \(p)"
        case .modelLoadFailed(let p): return "llama.cpp could not load the model (corrupt or truncated GGUF?): \(p)"
        case .contextCreationFailed(let m): return "could not create a llama context: \(m)"
        case .contextTooLarge(let r, let t): return "context of \(r) tokens exceeds the model's trained context of \(t)"
        case .batchFull(let c): return "batch is full (\(c) tokens)"
        case .tooManySequences(let s, let m): return "sequence id \(s) is outside the context's \(m) sequences"
        case .decodeFailed(let c, let n): return "llama_decode failed with code \(c) on a batch of \(n) tokens"
        case .noKVSlot(let n): return "no free KV cells for a batch of \(n) tokens (context full)"
        case .kvCompactionFailed(let n): return "freeing the KV cache's parked cells failed (saving and restoring \(n) bytes)"
        case .noLogits(let i): return "no logits for batch index \(i) (was its logits flag set?)"
        case .tokenizeFailed(let m): return "tokenize failed: \(m)"
        case .chatTemplate(let m): return "chat template: \(m)"
        case .notAnEmbeddingModel(let m): return "embeddings unavailable: \(m)"
        case .rpcServer(let e, let r): return "rpc server \(e): \(r)"
        }
    }
}

/// Process-wide llama.cpp initialisation. llama.cpp's log callback must be a plain C function: a Swift
/// closure formed in actor-isolated code crashed when llama.cpp logged from its worker threads.
public enum LlamaBackend {
    private static let initialised: Void = {
        llama_log_set(llamaLog, nil)
        llama_backend_init()
    }()

    /// Idempotent; every loader calls it, so callers never need to.
    public static func initialise() { _ = initialised }

    /// The GPU llama.cpp offloads to first, as "CUDA0 (NVIDIA H200)"; nil when this build of
    /// llama.cpp has no GPU backend or the machine no GPU it can use.
    public static var gpu: String? { Device.localGPUs.first?.description }

    /// llama.cpp's own lines: errors and warnings as such, the rest (model loading, every tensor) debug.
    fileprivate static let log = Logger(label: "llama.cpp")
}

private func llamaLog(_ level: ggml_log_level, _ text: UnsafePointer<CChar>?, _: UnsafeMutableRawPointer?) {
    guard let text else { return }
    let severity: Logger.Level = level == GGML_LOG_LEVEL_ERROR ? .error : level == GGML_LOG_LEVEL_WARN ? .warning : .debug
    guard LlamaBackend.log.logLevel <= severity else { return }
    var line = String(cString: text)
    while line.last == "\n" { line.removeLast() }
    guard !line.isEmpty else { return }
    LlamaBackend.log.log(level: severity, "\(line)")
}

/// How ggml's CPU threads wait for each other. They meet at a barrier after every operation of a
/// pass, hundreds of times per token. libgomp's default spins there for ≈ 300,000 rounds: with any
/// other busy process on 2 cores the spinners starve the thread they wait for (decoding collapsed
/// 15–30× here). `OMP_WAIT_POLICY=passive` sleeps at once and survives load, but its futex round
/// trips cost a third of plain decoding on an idle machine (perf: 17 % of samples in the kernel's
/// scheduler). A short spin catches most barriers and gives up before it starves anyone: measured
/// here (1.5B target, 2 threads, plain decoding), 17.9 against passive's 14.3 tok/s over 6 GSM8K
/// problems; beside a busy process 5.9–7.0 against 6.8–8.2 (spinning 10,000 rounds: 3.8).
public enum ThreadWaitPolicy {
    public static let spinCount = "1000"

    /// libgomp reads its variables when it is loaded, before `main`: a process that finds neither
    /// set sets the short spin and executes itself again, with the same arguments and descriptors
    /// (a socket handed over by systemd stays valid: same pid, same fds). A policy given in the
    /// environment is kept.
    public static func ensureInEnvironment() {
        guard getenv("OMP_WAIT_POLICY") == nil, getenv("GOMP_SPINCOUNT") == nil else { return }
        setenv("GOMP_SPINCOUNT", spinCount, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc): run on with libgomp's default rather than not at all.
    }
}
