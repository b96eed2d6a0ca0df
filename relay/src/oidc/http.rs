//! The HTTP client the relay talks to identity providers with: no redirects (a provider's
//! answer that redirects elsewhere is refused, against SSRF), a timeout per request, and
//! bounded answers (a provider cannot make the relay hold more than [`MAX_ANSWER_BYTES`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Largest answer read from a provider (discovery document, key set, token response).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdpHttpError {
    #[error("the request could not be built: {0}")]
    Request(String),
    #[error("no answer: {0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// A reqwest client with the relay's rules for providers.
#[derive(Clone)]
pub struct IdpHttp {
    client: reqwest::Client,
}

impl IdpHttp {
    pub fn new(timeout: Duration) -> Result<Self, IdpHttpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| IdpHttpError::Request(e.to_string()))?;
        Ok(Self { client })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, IdpHttpError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|e| IdpHttpError::Request(e.to_string()))?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| IdpHttpError::Transport(without_url(e)))?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(IdpHttpError::TooLarge);
        }
        let mut builder = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| IdpHttpError::Transport(without_url(e)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(IdpHttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| IdpHttpError::Request(e.to_string()))
    }
}

/// reqwest's message without the URL it names (a redirect target might carry anything).
fn without_url(error: reqwest::Error) -> String {
    error.without_url().to_string()
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = IdpHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
