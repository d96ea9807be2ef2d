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
    if (done()) return;  // it already failed; the rest finish on their own
    if (!return_exceptions_) {
        if (child.cancelled()) {
            set_exception(std::make_exception_ptr(CancelledError("a child of gather() was cancelled")));
            return;
        }
        if (auto e = child.exception()) {
            set_exception(e);
            return;
        }
    }
    if (finished_ < children_.size()) return;
    if (cancel_requested_)
        FutureBase::cancel("gather() was cancelled");
    else
        set_result();
}

bool GatheringFuture::cancel(std::string msg) {
    if (done()) return false;
    bool any = false;
    for (auto& c : children_)
        if (c->cancel(msg)) any = true;
    // The children's cancellations arrive through child_done, which then finishes us.
    if (any) cancel_requested_ = true;
    return any;
}
// [/docs:gathering_future]

}  // namespace aio
