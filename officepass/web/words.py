"""What the member reads: the store guide's words (Japanese first, English beside), spelled once."""

from __future__ import annotations

from enum import StrEnum

from wire.vocab import Act, Deny, Vacancy


class ServiceReason(StrEnum):
    """Why a press did not reach the door's decision: the service's own reasons, never the door's."""

    NO_ANSWER = "no_answer"  # the door did not answer within the wait (contract §8: 5 s)
    TOO_MANY_PRESSES = "too_many_presses"  # the member's press limit

BUTTONS: dict[Act, tuple[str, str]] = {
    Act.CHECK_IN: ("入店する", "Check in"),
    Act.UNLOCK: ("開錠する", "Unlock"),
    Act.CHECKOUT_BEGIN: ("チェックアウト手続きに進む", "Start checkout"),
    Act.CHECKOUT: ("チェックアウトする", "Check out"),
}

DONE: dict[Act, tuple[str, str]] = {
    Act.CHECK_IN: ("入店しました。ドアが開きます。", "Checked in: the door opens."),
    Act.UNLOCK: ("開錠しました。", "The door is unlocked."),
    Act.CHECKOUT_BEGIN: ("ドアで「開錠する」を押して外に出てから、「チェックアウトする」を押してください。",
                         "Press Unlock at the door, go out, then press Check out."),
    Act.CHECKOUT: ("チェックアウトしました。以後、このドアは開きません。",
                   "Checked out. The door no longer opens for you."),
}

REFUSED: dict[str, tuple[str, str]] = {
    Deny.FULL: ("満席です（×）。他の店舗をご利用ください。",
                "The store is full (×): please use another store."),
    Deny.NOT_CHECKED_IN: ("チェックアウト後、または入店前は開錠できません。",
                          "You are not checked in here (or you checked out): the door does not open."),
    Deny.EXPIRED: ("時間切れです。もう一度押してください。", "That took too long: press again."),
    Deny.REVOKED: ("このアカウントは利用できません。事務局へお問い合わせください。",
                   "This account is disabled: contact the office."),
    Deny.NOT_PRESENT: ("ドアのそばの画面のQRコードを、もう一度読み取ってください。",
                       "Scan the code at the door again (the one on the screen by the door)."),
    Deny.BUSY: ("混み合っています。もう一度押してください。", "The door is busy: press again."),
}
TOO_MANY_PRESSES = ("短時間に何度も押されました。少し待ってからもう一度押してください。",
                    "Too many presses in a short time: wait a moment, then press again.")
REFUSED_OTHER = ("ご利用いただけませんでした。もう一度お試しください。",
                 "That did not work: please try again.")

# The guide's unlock-trouble screen: the door did not answer, or its lock did not move. Entering:
# another office and a mail to the office; leaving: a call to the support centre.
TROUBLE = {
    "title": ("ドアが開かない場合", "If the door does not open"),
    "entering": ("入店時：お近くの他の店舗をご利用いただき、事務局へメールでご連絡ください。",
                 "Entering: please use another office nearby and mail the office."),
    "leaving": ("退店時：サポートセンターへお電話ください。", "Leaving: please call the support centre."),
    "mail": ("事務局のメール", "The office's mail"),
    "phone": ("サポートセンターの電話", "The support centre's phone"),
}

NO_NEWS = ("ドアからの情報はまだありません", "no news from the door yet")

VACANCY = {Vacancy.MANY: ("空きあり", "seats free"), Vacancy.ONE: ("残りわずか", "one seat left"),
           Vacancy.NONE: ("満席", "full")}

# The stay: the countdown on the door page, and its warning from the time the door itself warns
# (its session's warning_at), whatever the door's limit.
STAY = {
    "left": ("残り時間", "Time left"),
    "warning": ("まもなく利用時間の上限です。チェックアウトの準備をしてください。",
                "Your time is nearly up: please get ready to check out."),
    "overdue": ("利用時間を過ぎています。チェックアウトしてください。", "Your time is up: please check out."),
    "checking_out": ("チェックアウト手続き中です。ドアで「開錠する」を押して外に出てから、"
                     "「チェックアウトする」を押してください。",
                     "Checking out: press Unlock at the door, go out, then press Check out."),
}


def stay_limit(minutes: int) -> tuple[str, str]:
    """The guide's "stay at most 2 hours", for the door's own limit."""
    hours, rest = divmod(minutes, 60)
    ja = (f"{hours}時間" if hours else "") + (f"{rest}分" if rest else "")
    en = " ".join(part for part in (
        f"{hours} hour{'s' if hours != 1 else ''}" if hours else "",
        f"{rest} minute{'s' if rest != 1 else ''}" if rest else "") if part)
    return f"ご利用は最大{ja}です。", f"Stay at most {en}."

SCAN = {
    "title": ("ドアのQRコードを読み取る", "Scan the door's QR code"),
    "hint": ("入口ドアのそばのQRコードをカメラに映してください。",
             "Point the camera at the QR code by the entrance door."),
    "no_camera": ("カメラを使えません。スマートフォンのカメラアプリでQRコードを読み取ってください。",
                  "The camera cannot be used here: scan the QR code with your phone's camera app."),
    "not_door": ("ドアのQRコードではありません。", "That is not a door's QR code."),
}
