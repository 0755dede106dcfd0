import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The repository stands alone: what the tests and tools read lives in it.
@Suite struct StandaloneTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func theVendoredGSM8KIsWholeWithItsLicence() throws {
        let problems = try GSM8K.problems(1319)
        #expect(problems.count == 1319)
        #expect(problems[0].question.hasPrefix("Janet’s ducks lay 16 eggs per day."))
        #expect(problems[0].answer == "18")
        #expect(GSM8K.prompt(problems[0]).hasSuffix("put your final answer within \\boxed{}."))
        let licence = try String(contentsOf: GSM8K.file.deletingLastPathComponent().appendingPathComponent("LICENSE"), encoding: .utf8)
        #expect(licence.hasPrefix("MIT License") && licence.contains("OpenAI"))
        #expect(throws: TestFailure.self) { try GSM8K.problems(1320) }
    }

    /// Nothing reads the data folder beside the checkout that the project was first developed with.
    @Test func nothingReadsOutsideTheRepository() throws {
        let outside = "../" + "shared"
        var offenders: [String] = []
        for top in ["Sources", "Tests", "scripts", "Makefile", "Package.swift"] {
            let root = Self.repository.appendingPathComponent(top).path
            let files = FileManager.default.subpaths(atPath: root).map { $0.map { root + "/" + $0 } } ?? [root]
            for file in files where !file.hasSuffix(".jsonl") {
                if let text = try? String(contentsOfFile: file, encoding: .utf8), text.contains(outside) { offenders.append(file) }
            }
        }
        #expect(offenders.isEmpty, "\(offenders)")
    }

    @Test func aMissingFileFailsWithItsName() {
        #expect(throws: TestFailure.self) { try requireModel("/nonexistent/target.gguf") }
        do { try requireModel("/nonexistent/target.gguf") } catch { #expect("\(error)".contains("/nonexistent/target.gguf")) }
    }
}

/// Helper processes die with the test process, however it ends (the mechanism: TestSupport.launch).
@Suite struct ChildProcessTests {
    /// The helper's pid from an exit test's output, after waiting (up to 5 s) for it to be gone.
    static func helperSurvived(_ result: ExitTest.Result) -> (pid: pid_t, alive: Bool)? {
        let output = String(decoding: result.standardOutputContent, as: UTF8.self)
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("helper ") }),
              let pid = pid_t(line.dropFirst("helper ".count)) else { return nil }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if ChildProcesses.isGone(pid) { return (pid, false) }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        return (pid, true)
    }

    /// As in the crash that started this: an index out of range traps the test process while a
    /// busy helper spins.
    @Test func aHelperDiesWhenTheTestProcessTraps() async throws {
        let result = try await #require(processExitsWith: .failure, observing: [\.standardOutputContent]) {
            let helper = try BusyProcess()
            FileHandle.standardOutput.write(Data("helper \(helper.pid)\n".utf8))
            let none = [Int](repeating: 0, count: Int(getpid() % 1))
            _ = none[0]
        }
        let helper = try #require(Self.helperSurvived(result), "no helper pid in the exit test's output")
        #expect(!helper.alive, "helper \(helper.pid) outlived the test process that trapped")
    }

    /// SIGKILL (a CI timeout): nothing in the process runs, the kernel alone ends the helper.
    @Test func aHelperDiesWhenTheTestProcessIsKilled() async throws {
        let result = try await #require(processExitsWith: .signal(SIGKILL), observing: [\.standardOutputContent]) {
            let helper = try BusyProcess()
            FileHandle.standardOutput.write(Data("helper \(helper.pid)\n".utf8))
            kill(getpid(), SIGKILL)
            sleep(60)
        }
        let helper = try #require(Self.helperSurvived(result), "no helper pid in the exit test's output")
        #expect(!helper.alive, "helper \(helper.pid) outlived the test process that was killed")
    }

    /// Started from a thread that then ends, a helper lives on: the kernel's parent-death signal
    /// follows the forking thread, and TestSupport forks from one thread that never ends.
    @Test func aHelperOutlivesTheThreadThatStartedIt() throws {
        final class Box: @unchecked Sendable { var helper: BusyProcess?; var error: (any Error)? }
        let box = Box()
        let thread = Thread {
            do { box.helper = try BusyProcess() } catch { box.error = error }
        }
        thread.start()
        while box.helper == nil && box.error == nil { usleep(10_000) }
        if let error = box.error { throw error }
        let helper = try #require(box.helper)
        defer { helper.stop() }
        usleep(300_000)  // the thread has ended by now
        #expect(!ChildProcesses.isGone(helper.pid))
        #expect(helper.process.isRunning)
    }

    @Test func commandsRunToTheEndWithTheirOutput() throws {
        let big = try runCommand("/bin/sh", ["-c", "head -c 1000000 /dev/zero | tr '\\\\0' x; echo done >&2; exit 3"])
        #expect(big.exitCode == 3)
        #expect(big.stdout.count == 1_000_000)
        #expect(big.stderr == "done\n")
        let echoed = try runCommand("/bin/cat", [], stdin: "from stdin")
        #expect(echoed.stdout == "from stdin" && echoed.exitCode == 0)
        let killed = try runCommand("/bin/sh", ["-c", "kill -9 $$"])
        #expect(killed.exitCode == nil && killed.signal == SIGKILL)
        #expect(throws: TestFailure.self) { try runCommand("/bin/sleep", ["30"], timeout: 0.5) }
    }

    @Test func configOverridesReplaceTheKeysTheyName() {
        #expect(Sandbox.merged("threads = 2\ncontext_length = 4096\n", "context_length = 2048\nverifier = exact\n")
                == "threads = 2\ncontext_length = 2048\nverifier = exact\n")
    }
}
