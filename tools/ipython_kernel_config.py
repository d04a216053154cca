"""IPython configuration of the kernels that run the book's pages.

``tools.execution.kernel_environment`` copies this file into the book's own
IPython profile (``_build/ipython/profile_default``); IPython runs it in
every kernel that executes a page, with ``c`` its configuration object.
"""

import logging

import zmq

# ipykernel 7 warns "Kernel is running over TCP without encryption" at every
# start; the kernel listens on 127.0.0.1 only.
c.IPKernelApp.log_level = "ERROR"  # noqa: F821 (IPython defines c)


def not_a_closed_socket(record: logging.LogRecord) -> bool:
    """Drop the one error ipykernel 7.4 may log while it shuts down: a
    flush that reaches its IOPub pipe after the pipe was closed (the race
    of ipython/ipykernel#1518, fixed there for sends but not for flushes).
    The page's outputs are complete by then; every other record passes."""
    error = record.exc_info[1] if record.exc_info else None
    return not (isinstance(error, zmq.ZMQError)
                and error.errno == zmq.ENOTSOCK)


logging.getLogger("tornado.general").addFilter(not_a_closed_socket)
