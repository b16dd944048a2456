package zodb

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Tid is a transaction id: 8 big-endian bytes that are also a UTC time stamp
// in ZODB's TimeStamp format. The high 32 bits count minutes since
// 1900-01-01 00:00 with 31-day months and 12-month years; the low 32 bits are
// the seconds within that minute in units of 60/2^32 s (about 14 ns).
// Comparing two tids as integers compares them in time.
type Tid uint64

// Special tids.
const (
	// ZeroTid is never a real transaction; it means "none" or "from the start".
	ZeroTid Tid = 0
	// MaxTid is the largest valid tid (ZODB's utils.maxtid).
	MaxTid Tid = 0x7fffffffffffffff
)

// secondsPerUnit converts the low 32 bits of a tid to seconds.
const secondsPerUnit = 60.0 / 4294967296.0

// Bytes returns the 8-byte big-endian form used on disk and on the wire.
func (t Tid) Bytes() [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t))
	return b
}

// TidFromBytes decodes an 8-byte big-endian tid.
func TidFromBytes(b []byte) (Tid, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("tid must be 8 bytes, got %d", len(b))
	}
	return Tid(binary.BigEndian.Uint64(b)), nil
}

// ParseTid parses up to 16 hex digits, with or without a 0x prefix.
func ParseTid(s string) (Tid, error) {
	v, err := parseHex64(s)
	return Tid(v), err
}

// Hex returns the tid as 16 lowercase hex digits.
func (t Tid) Hex() string { return fmt.Sprintf("%016x", uint64(t)) }

// String returns the tid as 16 lowercase hex digits.
func (t Tid) String() string { return t.Hex() }

// calendar is the broken-down form of a tid's high 32 bits.
type calendar struct{ year, month, day, hour, minute int }

func splitMinutes(a uint32) calendar {
	v := int(a)
	return calendar{
		minute: v % 60,
		hour:   v / 60 % 24,
		day:    v/(60*24)%31 + 1,
		month:  v/(60*24*31)%12 + 1,
		year:   v/(60*24*31*12) + 1900,
	}
}

func (c calendar) minutes() uint32 {
	return uint32(((((c.year-1900)*12+(c.month-1))*31+(c.day-1))*24+c.hour)*60 + c.minute)
}

// MakeTid builds a tid from UTC calendar fields and fractional seconds
// exactly as persistent's TimeStamp(year, month, day, hour, minute, seconds)
// does: the seconds are truncated to units of 60/2^32 s.
func MakeTid(year, month, day, hour, minute int, seconds float64) Tid {
	a := calendar{year, month, day, hour, minute}.minutes()
	b := uint32(seconds / secondsPerUnit)
	return Tid(uint64(a)<<32 | uint64(b))
}

// TidFromEpoch converts float seconds since the Unix epoch the way ZODB does
// for a new transaction: TimeStamp(*gmtime(t)[:5], t % 60).
func TidFromEpoch(secs float64) Tid {
	whole := math.Floor(secs)
	u := time.Unix(int64(whole), 0).UTC()
	return MakeTid(u.Year(), int(u.Month()), u.Day(), u.Hour(), u.Minute(), math.Mod(secs, 60))
}

// TidFromTime converts a time to a tid (UTC, seconds truncated to tid units).
func TidFromTime(t time.Time) Tid {
	u := t.UTC()
	sec := float64(u.Second()) + float64(u.Nanosecond())/1e9
	return MakeTid(u.Year(), int(u.Month()), u.Day(), u.Hour(), u.Minute(), sec)
}

// parts returns the calendar fields and the seconds within the minute.
func (t Tid) parts() (calendar, float64) {
	return splitMinutes(uint32(t >> 32)), float64(uint32(t)) * secondsPerUnit
}

// Time returns the UTC time the tid encodes, to the nanosecond.
func (t Tid) Time() time.Time {
	c, sec := t.parts()
	ns := int64(math.Floor(sec * 1e9))
	return time.Date(c.year, time.Month(c.month), c.day, c.hour, c.minute, 0, 0, time.UTC).Add(time.Duration(ns))
}

// Epoch returns the tid as float seconds since the Unix epoch, exactly as
// persistent's TimeStamp.timeTime() computes it: the minute counted from
// 1901 plus the seconds, then the 1901-to-1970 offset subtracted, in
// float64. Counting from 1970 directly rounds differently in the last bit
// for about a fifth of tids, and the value goes to ZEO clients ("time" in
// history, undoLog and undoInfo).
func (t Tid) Epoch() float64 {
	c, sec := t.parts()
	from1901 := time.Date(c.year, time.Month(c.month), c.day, c.hour, c.minute, 0, 0, time.UTC).Unix() + seconds1901To1970
	return (float64(from1901) + sec) - seconds1901To1970
}

// seconds1901To1970 is persistent's gmoff: 69 years, 17 of them leap.
const seconds1901To1970 = 2177452800

// TimeString formats the tid as persistent's str(TimeStamp) does:
// "YYYY-MM-DD HH:MM:SS.ffffff" with the seconds rounded to microseconds.
func (t Tid) TimeString() string {
	c, sec := t.parts()
	return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%09.6f", c.year, c.month, c.day, c.hour, c.minute, sec)
}

// LaterThan returns t if it is greater than prev, otherwise the smallest tid
// greater than prev: prev plus one low-order unit, or, if the low 32 bits
// would overflow, the start of the next calendar minute (with real month
// lengths and leap years), as persistent's C TimeStamp.laterThan does.
func (t Tid) LaterThan(prev Tid) Tid {
	if t > prev {
		return t
	}
	if uint32(prev) != math.MaxUint32 {
		return prev + 1
	}
	c := splitMinutes(uint32(prev >> 32))
	c.minute++
	if c.minute == 60 {
		c.minute, c.hour = 0, c.hour+1
	}
	if c.hour == 24 {
		c.hour, c.day = 0, c.day+1
	}
	if c.day > daysIn(c.year, c.month) {
		c.day, c.month = 1, c.month+1
	}
	if c.month > 12 {
		c.month, c.year = 1, c.year+1
	}
	return Tid(uint64(c.minutes()) << 32)
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// TidClock hands out strictly increasing tids from the wall clock, as ZODB's
// BaseStorage does in tpc_begin: now.LaterThan(last). It is not safe for
// concurrent use; a storage calls it under its commit lock.
type TidClock struct {
	last Tid
	now  func() time.Time
}

// NewTidClock returns a clock whose next tid is greater than last.
// If now is nil, time.Now is used.
func NewTidClock(last Tid, now func() time.Time) *TidClock {
	if now == nil {
		now = time.Now
	}
	return &TidClock{last: last, now: now}
}

// Next returns a tid greater than every tid returned before and than the
// last tid given to NewTidClock or Observe.
func (c *TidClock) Next() Tid {
	t := c.now()
	secs := float64(t.UnixNano()) / 1e9
	c.last = TidFromEpoch(secs).LaterThan(c.last)
	return c.last
}

// Observe raises the clock's floor to tid, so later Next calls exceed it.
func (c *TidClock) Observe(tid Tid) {
	if tid > c.last {
		c.last = tid
	}
}

// Last returns the greatest tid handed out or observed.
func (c *TidClock) Last() Tid { return c.last }
