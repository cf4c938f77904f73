//! DynamoDB errors, classified: what is worth a retry (throttling, conflicts, transient
//! failures: `StoreError::Unavailable`), what failed for good, and why a conditional
//! write or transaction was refused.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;

use crate::domain::ports::StoreError;
use crate::domain::signals;

/// Throttling, conflicts and transient failures are worth a retry (writes that may have
/// landed are read back by their callers before answering).
pub(super) fn store_error<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> StoreError {
    let (kind, error) = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => (
            "unavailable",
            StoreError::Unavailable(format!("DynamoDB unreachable: {}", err_code(&err))),
        ),
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                code @ ("ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "ThrottlingException"),
            ) => ("throttled", StoreError::Unavailable(code.to_owned())),
            Some(code @ ("TransactionConflictException" | "InternalServerError")) => {
                ("unavailable", StoreError::Unavailable(code.to_owned()))
            }
            code => (
                "failed",
                StoreError::Failed(format!(
                    "DynamoDB: {} {}",
                    code.unwrap_or("unknown error"),
                    service.err().message().unwrap_or_default()
                )),
            ),
        },
        _ => (
            "failed",
            StoreError::Failed(format!("DynamoDB: {}", err_code(&err))),
        ),
    };
    signals::store_error(kind);
    error
}

fn err_code<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "request construction failed",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ServiceError(_) => "service error",
        _ => "unknown error",
    }
}

/// True when a call was refused only because its condition did not hold.
pub(super) fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: written (true), its condition refused it (false), or a
/// failure.
pub(super) fn conditionally_written<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(err) if condition_failed(&err) => Ok(false),
        Err(err) => Err(store_error(err)),
    }
}

/// The per-item reasons of a cancelled transaction; any other failure as a `StoreError`.
pub(super) fn cancellation_reasons<R>(
    err: SdkError<TransactWriteItemsError, R>,
) -> Result<Vec<CancellationReason>, StoreError> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
            Ok(canceled.cancellation_reasons().to_vec())
        }
        _ => Err(store_error(err)),
    }
}

pub(super) fn reason_code(reasons: &[CancellationReason], index: usize) -> &str {
    reasons.get(index).and_then(|r| r.code()).unwrap_or("None")
}

pub(super) fn is_conflict(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
}
