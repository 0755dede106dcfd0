import LookaheadProtocol
import Testing

@Suite struct SocketPathTests {
    /// Stand-ins for the system socket, present or not, so the tests don't depend on /run.
    let present = "/tmp"
    let absent = "/nonexistent/lookaheadd.sock"

    let everything = [
        "LOOKAHEAD_SOCKET": "/srv/la.sock", "XDG_RUNTIME_DIR": "/run/user/1000",
        "XDG_CACHE_HOME": "/home/ann/cache", "HOME": "/home/ann",
    ]

    @Test func explicitSocketWinsOverEverything() {
        #expect(SocketPath.default(environment: everything, systemPath: present) == "/srv/la.sock")
    }

    @Test func systemSocketWhenItExists() {
        var environment = everything
        environment["LOOKAHEAD_SOCKET"] = nil
        #expect(SocketPath.default(environment: environment, systemPath: present) == present)
        #expect(SocketPath.default(environment: environment, systemPath: absent) == "/run/user/1000/lookaheadd/lookaheadd.sock")
    }

    @Test func thenCacheHomeThenHome() {
        #expect(SocketPath.default(environment: ["XDG_CACHE_HOME": "/c", "HOME": "/home/ann"], systemPath: absent)
            == "/c/lookaheadd/lookaheadd.sock")
        #expect(SocketPath.default(environment: ["HOME": "/home/ann"], systemPath: absent)
            == "/home/ann/.cache/lookaheadd/lookaheadd.sock")
    }

    @Test func emptyOrRelativeCountsAsUnset() {
        let environment = ["LOOKAHEAD_SOCKET": "", "XDG_RUNTIME_DIR": "run", "XDG_CACHE_HOME": "", "HOME": "/home/ann"]
        #expect(SocketPath.default(environment: environment, systemPath: absent)
            == "/home/ann/.cache/lookaheadd/lookaheadd.sock")
    }

    @Test func daemonIgnoresTheClientsChoices() {
        #expect(SocketPath.daemonDefault(environment: everything) == "/run/user/1000/lookaheadd/lookaheadd.sock")
        var environment = everything
        environment["XDG_RUNTIME_DIR"] = nil
        #expect(SocketPath.daemonDefault(environment: environment) == "/home/ann/cache/lookaheadd/lookaheadd.sock")
    }

    @Test func clientFindsAnUnconfiguredDaemonOfTheSameUser() {
        for environment in [everything, ["HOME": "/home/ann"], ["XDG_RUNTIME_DIR": "/run/user/7", "HOME": "/h"]] {
            var client = environment
            client["LOOKAHEAD_SOCKET"] = nil
            #expect(SocketPath.default(environment: client, systemPath: absent) == SocketPath.daemonDefault(environment: environment))
        }
    }
}
