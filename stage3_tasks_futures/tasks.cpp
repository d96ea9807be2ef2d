// Stage 3: Futures and Tasks. gather's future (see tasks.hpp).
#include "stage3_tasks_futures/tasks.hpp"

namespace aio {

GatheringFuture::GatheringFuture(EventLoop& loop, std::vector<Ref<FutureBase>> children, bool return_exceptions)
    : BasicFuture<void, FutureBase>(loop), children_(std::move(children)), return_exceptions_(return_exceptions) {
    if (children_.empty()) {
        set_result();
        return;
    }
    for (auto& c : children_) tokens_.add(*c, [this](FutureBase& child) { child_done(child); });
}

// [docs:gathering_future]
void GatheringFuture::child_done(FutureBase& child) {
    ++finished_;
    if (done()) {
        // gather already failed and told its awaiter; nobody is left to give this child's
        // exception to, so it counts as retrieved (no "never retrieved" report later).
        if (!child.cancelled()) child.exception();
        return;
    }
    if (!return_exceptions_) {
        if (child.cancelled()) {
            set_exception(cancelled_error_of(child));  // the child's own, as asyncio does
            orphan_the_rest();
            return;
        }
        if (auto e = child.exception()) {
            set_exception(e);
            orphan_the_rest();
            return;
        }
    }
    if (finished_ < children_.size()) return;
    if (cancel_requested_)
        FutureBase::cancel(cancel_message_);
    else
        set_result();
}

// gather has failed and its awaiter is told; the children still running will finish with
// nobody to report to. Mark their exceptions as retrieved now, so a later failure is not
// reported as lost, as asyncio's gather does (its callback calls exception()). A flag, not
// a callback: a child may outlive the loop, and must carry nothing to schedule on it.
void GatheringFuture::orphan_the_rest() {
    for (auto& c : children_)
        if (!c->done()) c->exception_retrieved_ = true;
}

bool GatheringFuture::cancel(std::string msg) {
    if (done()) return false;
    bool any = false;
    for (auto& c : children_)
        if (c->cancel(msg)) any = true;
    // The children's cancellations arrive through child_done, which then finishes us.
    if (any) {
        cancel_requested_ = true;
        cancel_message_ = std::move(msg);
    }
    return any;
}
// [/docs:gathering_future]

}  // namespace aio
