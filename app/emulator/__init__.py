"""A local Cloudonix: its REST API, voice-application requests, CXML, session updates, CDRs.

Choices where Cloudonix leaves room (the facts are in /work/shared/reference/cloudonix.md):

- Session status moves new -> processing -> ringing -> connected -> answer. An answered call
  keeps "answer" once it ends; only `callEndTime` marks the end. A call never answered ends
  as "busy", "noanswer", "cancel" (caller or API hung up first) or "error" (anything else).
- The caller's leg is answered by the first <Say>/<Play>/<Gather>/<Record>, or by a <Dial>
  once the far end picks up; a leading <Pause> does not answer. billsec counts from there.
- DELETE of an ended call answers 204 (idempotent); an unknown token answers 404.
- Every third session update is sent as a one-element list, and the final one is sent twice
  with the same eventId. `session_updates_sent` counts deliveries answered 2xx.
- An outbound call's first leg ringing out, busy or failing ends with hangup "callee"; once it
  answers, its script's `talk` is unused: the application decides when the call ends.
- PUT /faults scripts the next originate answers (status, Retry-After, real-second delay,
  whether the call is placed anyway); they are consumed after the bearer and domain checks,
  before pacing. GET /calls?to= lists outcomes by number (digits, like behaviours).
"""

from app.emulator.app import Emulator, create_emulator
from app.emulator.config import EmulatorConfig
from app.emulator.models import Script

__all__ = ["Emulator", "EmulatorConfig", "Script", "create_emulator"]
