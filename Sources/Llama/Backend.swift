import CLlama
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
    case noLogits(index: Int)
    case tokenizeFailed(String)
    case chatTemplate(String)
    case notAnEmbeddingModel(String)

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
        case .noLogits(let i): return "no logits for batch index \(i) (was its logits flag set?)"
        case .tokenizeFailed(let m): return "tokenize failed: \(m)"
        case .chatTemplate(let m): return "chat template: \(m)"
        case .notAnEmbeddingModel(let m): return "embeddings unavailable: \(m)"
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

    /// Whether llama.cpp's own log lines (model loading, warnings) reach stderr. Off by default so
    /// the CLI's output stays readable; errors are always shown.
    nonisolated(unsafe) public static var verbose = false
}

private func llamaLog(_ level: ggml_log_level, _ text: UnsafePointer<CChar>?, _: UnsafeMutableRawPointer?) {
    guard let text else { return }
    if LlamaBackend.verbose || level == GGML_LOG_LEVEL_ERROR {
        _ = text.withMemoryRebound(to: UInt8.self, capacity: strlen(text)) { write(2, $0, strlen(text)) }
    }
}
