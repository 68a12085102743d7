// chat_server.cpp: the chat server of chat_server.c in C++17, driven by the event queue
// instead of callbacks: the main thread runs its own loop around sb_engine_poll_event and
// answers every request there (authentication, room access, storage, app events), and a
// second thread reads the commands on stdin. Same token format, rooms, documents, app
// events, commands and output as chat_server.c, so the same tests drive both. The command
// thread may publish: the store request it waits for is answered by the main thread's loop.
// Document updates come to a callback (they need no answer, so they have no event).
//
// Usage: chat_server_cpp [PORT]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "switchboard.h"

namespace {

std::mutex out_lock;

void say(const std::string &line) {
    std::lock_guard<std::mutex> guard(out_lock);
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

void check(sb_result r, const char *what) {
    if (r != SB_OK) {
        std::fprintf(stderr, "%s: %s: %s\n", what, sb_result_message(r), sb_last_error_message());
        std::abort();
    }
}

// Completes a request. SB_REQUEST_NOT_PENDING on a first completion is a normal outcome,
// not a host bug: the client left, the engine timed the request out or is shutting down.
// Returns whether this completion was the one that counted.
bool complete(sb_result r, const char *what) {
    if (r == SB_REQUEST_NOT_PENDING) {
        std::fprintf(stderr, "%s: request no longer pending (client gone)\n", what);
        return false;
    }
    check(r, what);
    return true;
}

void expect_not_pending(sb_result r, const char *what) {
    if (r != SB_REQUEST_NOT_PENDING) {
        std::fprintf(stderr, "%s: second completion gave %d, expected SB_REQUEST_NOT_PENDING\n",
                     what, static_cast<int>(r));
        std::abort();
    }
}

// A string the library allocated, freed with sb_string_free.
struct Owned {
    char *p = nullptr;
    Owned() = default;
    Owned(const Owned &) = delete;
    Owned &operator=(const Owned &) = delete;
    ~Owned() { sb_string_free(p); }
    char **out() { return &p; }
    std::string str() const { return p ? p : ""; }
    explicit operator bool() const { return p != nullptr; }
};

// An event from the queue, freed with sb_event_free.
struct Event {
    sb_event *e = nullptr;
    Event() = default;
    Event(const Event &) = delete;
    Event &operator=(const Event &) = delete;
    ~Event() { sb_event_free(e); }
};

bool plain_name(const std::string &s) {
    return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
    });
}

struct Deferred {
    std::chrono::steady_clock::time_point due;
    sb_request_id request;
    std::string result;
};

class Host {
  public:
    explicit Host(sb_engine *engine) : engine_(engine) {}

    // The host's loop: waits for events (or the next deferred answer) and answers them.
    void run() {
        for (;;) {
            int timeout = -1;
            if (!deferred_.empty()) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deferred_.front().due - std::chrono::steady_clock::now());
                timeout = static_cast<int>(std::max<long long>(0, left.count()));
            }
            Event ev;
            sb_result r = sb_engine_poll_event(engine_, timeout, &ev.e);
            if (r == SB_ENGINE_CLOSED)
                return;
            if (r == SB_OK)
                handle(ev.e);
            else if (r != SB_NO_EVENT)
                check(r, "poll");
            answer_due();
        }
    }

  private:
    void handle(const sb_event *ev) {
        sb_request_id req = sb_event_get_request(ev);
        const char *json = sb_event_get_json(ev);
        switch (sb_event_get_kind(ev)) {
        case SB_EVENT_AUTH: {
            Owned token, document;
            if (sb_json_get_string(json, "/document", document.out()) == SB_OK)
                say("auth document " + document.str());
            if (sb_json_get_string(json, "/auth/token", token.out()) != SB_OK) {
                if (complete(sb_auth_request_refuse(req, "Authentication required"), "refuse"))
                    expect_not_pending(sb_auth_request_refuse(req, "again"), "refuse");
                break;
            }
            std::string t = token.str();
            if (t.rfind("c:", 0) != 0 || !plain_name(t.substr(2))) {
                if (complete(sb_auth_request_refuse(req, "Invalid token"), "refuse"))
                    expect_not_pending(sb_auth_request_accept(req, "{\"id\":\"x\"}"), "refuse");
                break;
            }
            std::string name = t.substr(2);
            std::string user = "{\"id\":\"" + name + "\",\"username\":\"" + name + " (C)\"}";
            if (complete(sb_auth_request_accept(req, user.c_str()), "accept"))
                expect_not_pending(sb_auth_request_accept(req, user.c_str()), "accept");
            break;
        }
        case SB_EVENT_ROOM_ACCESS: {
            std::string room = sb_event_get_name(ev);
            bool document = room.rfind("doc:", 0) == 0;
            bool allowed = room.rfind(document ? "doc:secret-" : "secret-", 0) != 0;
            if (document)
                say("access " + room + (allowed ? " allowed" : " refused"));
            if (complete(sb_room_request_answer(req, allowed), "room access"))
                expect_not_pending(sb_room_request_answer(req, true), "room access");
            break;
        }
        case SB_EVENT_STORE:
            say(std::string("stored ") + json);
            if (complete(sb_store_request_done(req), "store"))
                expect_not_pending(sb_store_request_done(req), "store");
            break;
        case SB_EVENT_APP:
            app_event(req, sb_event_get_name(ev), json, sb_event_get_socket_json(ev));
            break;
        case SB_EVENT_NONE:
            break;
        }
    }

    void app_event(sb_request_id req, const std::string &event, const char *args,
                   const char *socket) {
        if (event == "presence") {
            Owned room, members;
            if (sb_json_get_string(args, "/0", room.out()) != SB_OK) {
                complete(sb_app_event_fail(req, "presence needs a room"), "presence");
                return;
            }
            check(sb_engine_presence(engine_, room.p, members.out()), "presence");
            complete(sb_app_event_ack(req, members.p), "presence");
        } else if (event == "shout") {
            Owned room, text, from;
            if (sb_json_get_string(args, "/0/room", room.out()) == SB_OK &&
                sb_json_get(args, "/0/text", text.out()) == SB_OK &&
                sb_json_get(socket, "/user/id", from.out()) == SB_OK) {
                std::string shout = "{\"from\":" + from.str() + ",\"text\":" + text.str() + "}";
                check(sb_engine_emit_to_room(engine_, room.p, "shout", shout.c_str()), "shout");
                complete(sb_app_event_ack(req, "{\"shouted\":true}"), "shout");
            } else {
                complete(sb_app_event_fail(req, "shout needs {room, text}"), "shout");
            }
        } else if (event == "poke") {
            Owned id;
            check(sb_json_get_string(socket, "/id", id.out()), "poke");
            check(sb_engine_emit_to_socket(engine_, id.p, "poked", "{\"by\":\"host\"}"), "poke");
            complete(sb_app_event_ack(req, "null"), "poke");
        } else if (event == "echo") {
            Owned value;
            sb_json_get(args, "/0", value.out());
            deferred_.push_back({std::chrono::steady_clock::now() + std::chrono::milliseconds(50),
                                 req, value ? value.str() : "null"});
        } else if (event == "fail") {
            if (complete(sb_app_event_fail(req, "echo chamber closed"), "fail"))
                expect_not_pending(sb_app_event_fail(req, "again"), "fail");
        }
    }

    // Answers the deferred requests whose time has come (they are in order of due time).
    void answer_due() {
        auto now = std::chrono::steady_clock::now();
        while (!deferred_.empty() && deferred_.front().due <= now) {
            const Deferred &d = deferred_.front();
            if (complete(sb_app_event_ack(d.request, d.result.c_str()), "echo"))
                expect_not_pending(sb_app_event_ack(d.request, "null"), "echo");
            deferred_.erase(deferred_.begin());
        }
    }

    sb_engine *engine_;
    std::vector<Deferred> deferred_;
};

// The first `n` space-separated words of `line`, then the rest of it (missing ones empty).
std::vector<std::string> words(const std::string &line, size_t n) {
    std::vector<std::string> out;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t space = line.find(' ', at);
        out.push_back(at < line.size() ? line.substr(at, space - at) : "");
        at = space == std::string::npos ? line.size() : space + 1;
    }
    out.push_back(at < line.size() ? line.substr(at) : "");
    return out;
}

// The name and the bytes are borrowed for the call: only their length is kept here.
extern "C" void on_document_update(void *, const char *doc_name, const uint8_t *update,
                                   size_t len) {
    if (!update || len == 0)
        std::abort(); // an update changed the document: never empty
    say(std::string("document-update ") + doc_name + " " + std::to_string(len));
}

// Reads commands until "quit" or end of input, then shuts the engine down, which wakes the
// main thread's sb_engine_poll_event with SB_ENGINE_CLOSED.
void read_commands(sb_engine *engine) {
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.rfind("quit", 0) == 0)
            break;
        auto space = line.find(' ');
        std::string cmd = line.substr(0, space);
        std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
        if (cmd == "presence") {
            Owned members;
            if (sb_engine_presence(engine, rest.c_str(), members.out()) == SB_OK)
                say("presence " + rest + " " + members.str());
        } else if (cmd == "emit") {
            auto a = rest.find(' ');
            auto b = a == std::string::npos ? a : rest.find(' ', a + 1);
            std::string room = rest.substr(0, a);
            std::string event = a == std::string::npos ? "" : rest.substr(a + 1, b - a - 1);
            std::string json = b == std::string::npos ? "" : rest.substr(b + 1);
            sb_result r =
                sb_engine_emit_to_room(engine, room.c_str(), event.c_str(), json.c_str());
            say(std::string("emit ") + sb_result_message(r) + " " + sb_last_error_message());
        } else if (cmd == "kick") {
            size_t n = 0;
            check(sb_engine_disconnect_user(engine, rest.c_str(), &n), "kick");
            say("kicked " + rest + " " + std::to_string(n));
        } else if (cmd == "notify") {
            auto w = words(rest, 2);
            size_t n = 0;
            sb_result r = sb_engine_notify_user(engine, w[0].c_str(),
                                                w[1] == "-" ? nullptr : w[1].c_str(),
                                                w[2].c_str(), &n);
            if (r == SB_OK)
                say("notified " + w[0] + " " + std::to_string(n));
            else
                say(std::string("notify error ") + sb_result_message(r) + ": " +
                    sb_last_error_message());
        } else if (cmd == "publish") {
            auto w = words(rest, 3);
            Owned ack;
            sb_result r = sb_engine_publish(engine, w[0].c_str(), w[1].c_str(),
                                            w[2] == "-" ? nullptr : w[2].c_str(), w[3].c_str(),
                                            ack.out());
            if (r == SB_OK)
                say("published " + w[0] + " " + ack.str());
            else
                say(std::string("publish error ") + sb_result_message(r) + ": " +
                    sb_last_error_message());
        } else if (cmd == "rooms") {
            Owned rooms;
            check(sb_engine_rooms(engine, rooms.out()), "rooms");
            say("rooms " + rooms.str());
        }
    }
    check(sb_engine_shutdown(engine, 500), "shutdown");
}

} // namespace

int main(int argc, char **argv) {
    sb_config *config = nullptr;
    sb_engine *engine = nullptr;
    uint16_t port = static_cast<uint16_t>(argc > 1 ? std::atoi(argv[1]) : 0);

    check(sb_config_new(&config), "config");
    // NULL callbacks: these requests arrive through sb_engine_poll_event.
    check(sb_config_set_auth_callback(config, nullptr, nullptr), "auth");
    check(sb_config_set_room_access_callback(config, nullptr, nullptr), "room access");
    check(sb_config_set_store_callback(config, nullptr, nullptr), "store");
    for (const char *event : {"presence", "shout", "poke", "echo", "fail"})
        check(sb_config_add_app_event(config, event), "app event");
    check(sb_config_set_document_update_callback(config, on_document_update, nullptr),
          "documents");
    check(sb_config_set_worker_threads(config, 2), "workers");
    // Server-sent events verify JWTs only (as chat_server.c).
    if (const char *secret = std::getenv("SB_JWT_SECRET"))
        check(sb_config_set_jwt_secret(config, secret), "jwt secret");
    if (const char *ping = std::getenv("SB_SSE_PING_MS"))
        check(sb_config_set_sse_ping_interval_ms(config, std::strtoull(ping, nullptr, 10)),
              "sse ping");
    check(sb_engine_new(config, &engine), "engine");
    sb_config_free(config);
    check(sb_engine_listen(engine, "127.0.0.1", port, &port), "listen");
    say("switchboard listening on http://127.0.0.1:" + std::to_string(port));

    std::thread commands(read_commands, engine);
    Host(engine).run();
    commands.join();
    // Shut down already (by the command thread); free it with its clients disconnected.
    sb_engine_free(engine);
    say("bye");
    return 0;
}
