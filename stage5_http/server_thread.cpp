// Stage 5: an HttpServer on a thread and a loop of its own. See server_thread.hpp.
#include "stage5_http/server_thread.hpp"

#include <pthread.h>
#include <signal.h>

#include <exception>
#include <future>
#include <memory>

#include "stage3_tasks_futures/runners.hpp"
#include "stage3_tasks_futures/tasks.hpp"
#include "stage4_sockets/selector_events.hpp"

namespace aio {

namespace {

// The server's main coroutine: listen, say where (through `started`), serve until stop()
// completes `stopping`, then shut down gracefully.
Coroutine<> serve_until_stopped(Router router, ServerConfig config, Ref<Future<>> stopping, double* stop_timeout,
                                std::promise<int>* started, bool* told) {
    Ref<HttpServer> server = make_ref<HttpServer>(std::move(router), config);
    co_await server->start("127.0.0.1", 0);
    *told = true;
    started->set_value(server->port());  // from here on, the constructor has returned
    co_await stopping;
    co_await server->shutdown(*stop_timeout);
}

}  // namespace

ServerThread::ServerThread(Router router, ServerConfig config) {
    std::promise<int> started;
    std::future<int> port = started.get_future();
    // The thread inherits the signal mask of the thread that creates it: all blocked, so
    // that Ctrl-C reaches the program's loop, never this one.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    thread_ = std::thread([this, &started, router = std::move(router), config]() mutable {
        serve(std::move(router), config, started);
    });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    try {
        port_ = port.get();
    } catch (...) {
        thread_.join();  // it has ended: the server could not start
        throw;
    }
}

ServerThread::~ServerThread() { stop(); }

std::string ServerThread::url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void ServerThread::serve(Router router, ServerConfig config, std::promise<int>& started) {
    // Not aio::run(): that would take over Ctrl-C (SIGINT) for this loop, which must not
    // see it. The same steps otherwise: run, cancel what is left, close.
    std::unique_ptr<EventLoop> loop = new_selector_event_loop();
    bool told = false;
    try {
        stopping_ = create_future<>(*loop);
        loop_ = loop.get();
        loop->run_until_complete(serve_until_stopped(std::move(router), config, stopping_, &stop_timeout_,
                                                     &started, &told));
    } catch (...) {
        if (!told) started.set_exception(std::current_exception());  // the constructor throws it
    }
    try {
        cancel_all_tasks(*loop);
    } catch (...) {
    }
    stopping_ = nullptr;  // (a Ref: only this thread may drop it, before its loop goes)
    loop->close();
}

void ServerThread::stop(double timeout) {
    if (!thread_.joinable()) return;
    stop_timeout_ = timeout;  // (call_soon_threadsafe's mutex publishes it to the server's thread)
    try {
        loop_->call_soon_threadsafe(
            [this] {
                if (stopping_ && !stopping_->done()) stopping_->set_result();
            },
            "ServerThread::stop");
    } catch (const RuntimeError&) {
        // Its loop has closed already (the server failed on its own): nothing to stop.
    }
    thread_.join();
}

}  // namespace aio
