# -*- coding: utf-8 -*-
# Copyright: lxcri.proxmox contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional ``requests`` import, shared by the Proxmox VE API client and the registry client.

Modules check ``HAS_REQUESTS`` before talking HTTP and report
``REQUESTS_IMPORT_ERROR`` with ``missing_required_lib("requests")``.
Without requests the exception names stand for a class nothing raises, so
importing them (and naming them in ``except``) still works.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ("HAS_REQUESTS", "REQUESTS_IMPORT_ERROR", "requests", "RequestsConnectionError", "ChunkedEncodingError",
           "ContentDecodingError", "SSLError", "Timeout")

try:
    import requests
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ChunkedEncodingError, ContentDecodingError, SSLError, Timeout
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised on hosts without requests
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = _exc

    def _stand_in(name):
        return type(name, (Exception,), {"__doc__": "Stands in for requests.exceptions.%s; never raised." % name})

    RequestsConnectionError, ChunkedEncodingError, ContentDecodingError, SSLError, Timeout = (
        _stand_in(name) for name in ("ConnectionError", "ChunkedEncodingError", "ContentDecodingError", "SSLError",
                                     "Timeout"))
