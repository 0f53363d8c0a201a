//! Clap value parsers and the seed range shared by the comparison binaries.

use anyhow::Result;
use burn_rlora::multitask::SamplingStrategy;
use burn_rlora::RLoraConfig;

/// Parse a `--sampling` value: `proportional`, `uniform`, or a temperature
/// in [[`MIN_TEMPERATURE`], [`MAX_TEMPERATURE`]] such as `2` (a clap value parser).
///
/// # Errors
///
/// When the value is none of these.
pub fn parse_sampling(s: &str) -> Result<SamplingStrategy, String> {
    Ok(match s {
        "proportional" => SamplingStrategy::Proportional,
        "uniform" => SamplingStrategy::Uniform,
        t => match t.parse::<f64>() {
            Ok(t) if (MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&t) => {
                SamplingStrategy::Temperature(t)
            }
            _ => {
                return Err(format!(
                    "expected 'proportional', 'uniform' or a temperature from {MIN_TEMPERATURE} \
                     to {MAX_TEMPERATURE}"
                ))
            }
        },
    })
}

/// The smallest sampling temperature accepted (below it nearly every draw goes to the largest task).
pub const MIN_TEMPERATURE: f64 = 0.1;
/// The largest sampling temperature accepted (above it the mix is all but uniform).
pub const MAX_TEMPERATURE: f64 = 100.0;

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("must be a finite number".into())
    }
}

/// A clap value parser: a finite number greater than 0 (learning rates, alpha).
///
/// # Errors
///
/// When the value is not such a number.
pub fn parse_positive(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err("must be greater than 0".into())
    }
}

/// A clap value parser: a finite number, 0 or more (coefficients).
///
/// # Errors
///
/// When the value is not such a number.
pub fn parse_non_negative(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err("must be 0 or more".into())
    }
}

/// A clap value parser: a dropout probability, in `[0, 1)` as the adapters
/// require ([`RLoraConfig::check_dropout`]).
///
/// # Errors
///
/// When the value is not in that range.
pub fn parse_dropout(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    RLoraConfig::check_dropout(v)
        .map(|()| v)
        .map_err(|e| e.to_string())
}

/// A clap value parser: a fraction strictly between 0 and 1.
///
/// # Errors
///
/// When the value is not in that range.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err("must be strictly between 0 and 1".into())
    }
}

/// The seeds `seed, seed + 1, ..., seed + count - 1`.
///
/// # Errors
///
/// When the last one would pass `u64::MAX`, or `count` is 0.
pub fn seed_range(seed: u64, count: u64) -> Result<Vec<u64>, String> {
    if count == 0 {
        return Err("--seeds must be at least 1".into());
    }
    seed.checked_add(count - 1)
        .map(|_| (0..count).map(|k| seed + k).collect())
        .ok_or_else(|| {
            format!(
                "--seed {seed} with --seeds {count} runs past the largest seed {}",
                u64::MAX
            )
        })
}
