import Testing
import Llama
import Lookahead
import StepBatcher
import TestSupport

/// The target's layers split over this CPU and `rpc-server` processes on loopback (llama.cpp's RPC
/// backend), each server with its own thread and reference kernels.
@Suite("A target split over rpc-servers", .serialized)
struct RPCTests {
    func config(servers: [RPCServer], gpuLayers: Int32) throws -> EngineConfig {
        var c = EngineConfig(modelDirectory: RealModels.directory)
        c.targetPath = try RealModels.path("target")
        c.draftPath = try RealModels.path("draft")
        c.verifier = .exact
        c.threads = RealModels.threads
        c.sequences = 16
        c.contextLength = 2048
        c.batchInvariant = true
        c.rpcServers = try servers.map { try RPCEndpoint($0.endpoint, trustedNetwork: false) }
        c.gpuLayers = gpuLayers
        c.tensorSplit = servers.isEmpty ? nil : Array(repeating: 1, count: servers.count)
        return c
    }

    func greedy(_ mode: Mode, maxTokens: Int) -> SessionConfig {
        var c = SessionConfig(mode: mode)
        c.maxTokens = maxTokens
        c.adaptive = false
        return c
    }

    /// 16 of the target's 28 layers on two servers (8 each), 12 here: the greedy tokens are the
    /// all-local target's, in plain decoding and with lookahead, whose γ-wide passes cross too.
    @Test func aTargetSplitOverTwoServersWritesTheLocalTokens() throws {
        let servers = try [RPCServer(), RPCServer()]
        let split = try Engines(config: try config(servers: servers, gpuLayers: 16))
        #expect(split.targetModel.offloadedLayers == 16)
        #expect(split.targetModel.devices.compactMap(\.endpoint) == servers.map(\.endpoint))
        #expect(split.targetModel.device.hasPrefix("CPU + RPC"), "\(split.targetModel.device)")
        #expect(split.draftModel!.devices.isEmpty, "the draft stays here")
        let prompt = try split.prompt(.text(GSM8K.prompt(try GSM8K.problem(0))))
        let local = try RealModels.exact.generate(prompt: prompt, config: greedy(.ar, maxTokens: 24))
        let remote = try split.generate(prompt: prompt, config: greedy(.ar, maxTokens: 24))
        #expect(remote.tokens == local.tokens)
        let speculated = try split.generate(prompt: prompt, config: greedy(.lookahead, maxTokens: 24))
        #expect(speculated.tokens == local.tokens)
    }

    /// `rpc_models = target, draft`: the draft's last 8 layers go to the server as well, and
    /// lookahead still writes the all-local target's tokens.
    @Test func theDraftCanLiveOnAServerToo() throws {
        let server = try RPCServer()
        var c = try config(servers: [server], gpuLayers: 8)
        c.rpcModels = [.target, .draft]
        let split = try Engines(config: c)
        #expect(split.draftModel!.devices.compactMap(\.endpoint) == [server.endpoint])
        #expect(split.draftModel!.offloadedLayers == 8 && split.targetModel.offloadedLayers == 8)
        let prompt = try split.prompt(.text(GSM8K.prompt(try GSM8K.problem(2))))
        let local = try RealModels.exact.generate(prompt: prompt, config: greedy(.ar, maxTokens: 16))
        #expect(try split.generate(prompt: prompt, config: greedy(.lookahead, maxTokens: 16)).tokens == local.tokens)
    }

    /// A server that is not there is named when the models load; ggml alone would abort the process.
    @Test func aServerThatIsDownIsNamedAtLoad() throws {
        var c = try config(servers: [], gpuLayers: 8)
        let endpoint = "127.0.0.1:\(try RPCServer.freePort())"
        c.rpcServers = [try RPCEndpoint(endpoint, trustedNetwork: false)]
        let error = try #require(throws: LlamaError.self) { try Engines(config: c) }
        #expect(error == .rpcServer(endpoint: endpoint, reason: "connect: Connection refused"), "\(error)")
    }

    /// A server killed mid-answer fails that request with an engine error naming it, and every
    /// later pass of the split target fails the same way, at once; the process lives on.
    @Test func aServerLostMidAnswerFailsThePassesNamingIt() throws {
        let server = try RPCServer()
        let split = try Engines(config: try config(servers: [server], gpuLayers: 8), loadDraft: false)
        let prompt = try split.prompt(.text(GSM8K.prompt(try GSM8K.problem(1))))
        var steps = 0
        let failure = try #require(throws: BatcherError.self) {
            try split.generate(prompt: prompt, config: greedy(.ar, maxTokens: 256)) { update in
                guard case .step = update else { return }
                steps += 1
                if steps == 1 { server.kill() }
            }
        }
        guard case .engine(let message) = failure else { Issue.record("\(failure)"); return }
        #expect(message.contains("rpc server \(server.endpoint)"), "\(message)")
        #expect(RemoteDevices.hasFailed(server.endpoint))
        let again = try #require(throws: BatcherError.self) { try split.generate(prompt: prompt, config: greedy(.ar, maxTokens: 8)) }
        #expect("\(again)".contains(server.endpoint))
    }
}
