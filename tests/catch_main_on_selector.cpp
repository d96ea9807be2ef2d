// main() of build/bin/tests_stage4_on_selector: the stage 2 and stage 3 suites (the same
// objects as in tests_stage2 and tests_stage3) on stage 4's SelectorEventLoop. See
// tests/loop_test_support.hpp.
//
// It makes aio::new_event_loop(), and so every TEST_LOOP and run(main), return a
// SelectorEventLoop on the selector AIO_SELECTOR names (select, poll or epoll; unset: the
// DefaultSelector), says which on stderr, and leaves out the tests tagged
// [stage2-loop-only]. `make test` runs it once per selector.
#include <cstdio>
#include <exception>
#include <string>

#include "stage4_sockets/selector_events.hpp"
#include "tests/catch_session.hpp"

int main(int argc, char* argv[]) {
    std::string selector;
    try {
        selector = aio::selector_from_env()->name();  // a bad AIO_SELECTOR: one error here, not one per test
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
    aio::set_event_loop_factory(aio::new_selector_event_loop);
    std::fprintf(stderr, "(the stage 2 and 3 tests on SelectorEventLoop with %s)\n", selector.c_str());
    return catch_session::run(argc, argv, "[stage2-loop-only]");
}
