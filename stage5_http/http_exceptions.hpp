// Stage 5: HTTP/1.1. The error a malformed message raises.
//
// Adds:    HttpError: what was wrong, at which byte, and the status a server answers with
//          (400, 413, 414, 431, 501, 505).
// Mirrors: aiohttp's http_exceptions.py, where HttpProcessingError carries `code` and
//          `message` and its subclasses (BadHttpMessage, LineTooLong, InvalidHeader,
//          BadStatusLine, TransferEncodingError, ContentLengthError) name the fault. Here one
//          class does, and the message names the fault and the RFC section that rules it out.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace aio {

class HttpError : public std::runtime_error {
public:
    // `status`: what a server sends back (400 Bad Request, 413 Content Too Large, 414 URI Too
    // Long, 431 Request Header Fields Too Large, 501 Not Implemented, 505 HTTP Version Not
    // Supported). A client parsing a response gets the same codes; for it they only sort the
    // fault. `offset`: the byte of the connection's input (counting from 0, over every
    // message fed to the parser) where the fault was seen. `problem`: what was wrong, and
    // usually the rule (RFC section) that forbids it.
    HttpError(int status, std::uint64_t offset, const std::string& problem)
        : std::runtime_error("bad HTTP message at byte " + std::to_string(offset) + ": " + problem + " (" +
                             std::to_string(status) + " " + status_text(status) + ")"),
          status_(status),
          offset_(offset),
          problem_(problem) {}

    int status() const noexcept { return status_; }
    std::uint64_t offset() const noexcept { return offset_; }
    const std::string& problem() const noexcept { return problem_; }

    // The reason phrases of the statuses a parser raises (RFC 9110 §15).
    static const char* status_text(int status) noexcept {
        switch (status) {
        case 400: return "Bad Request";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 431: return "Request Header Fields Too Large";
        case 501: return "Not Implemented";
        case 505: return "HTTP Version Not Supported";
        default: return "Error";
        }
    }

private:
    int status_;
    std::uint64_t offset_;
    std::string problem_;
};

}  // namespace aio
