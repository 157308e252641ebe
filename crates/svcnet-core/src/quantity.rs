//! Resource quantities (`"2"`, `"1500m"`, `"1.5"`, `"4Ki"`, `"1e3"`) read as thousandths, as
//! upstream's `Quantity.MilliValue()` reads them (fractions of a thousandth round up). The
//! k8s-openapi `Quantity` is only a string, and the topology hints need a node's CPU.

/// `text` in thousandths of its unit, or `None` when it is not a quantity or overflows.
pub fn milli_value(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    // the value is digits × 10^exp10 × 2^exp2, in thousandths
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    let mut exp10: i32 = 3 - i32::try_from(fraction.len()).ok()?;
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exponent = other.strip_prefix(['e', 'E'])?;
            exp10 += exponent.parse::<i32>().ok().filter(|e| e.abs() <= 30)?;
        }
    }
    let mut value = digits.checked_mul(1i128.checked_shl(exp2)?)?;
    if exp10 >= 0 {
        value = value.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
    } else {
        let divisor = 10i128.checked_pow(exp10.unsigned_abs())?;
        value = (value + divisor - 1) / divisor;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::milli_value;

    #[test]
    fn reads_the_forms_nodes_report() {
        for (text, millis) in [
            ("2", 2000),
            ("1500m", 1500),
            ("1.5", 1500),
            ("0.0001", 1),
            ("1k", 1_000_000),
            ("1Ki", 1_024_000),
            ("1e3", 1_000_000),
            ("0", 0),
            ("-1", -1000),
            ("250m", 250),
        ] {
            assert_eq!(milli_value(text), Some(millis), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        for text in ["", "m", "1.2.3", "2 cores", "1x", "1e99", "."] {
            assert_eq!(milli_value(text), None, "{text}");
        }
    }
}
