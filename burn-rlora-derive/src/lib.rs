//! `#[derive(Adapt)]` for `burn-rlora`.
//!
//! Use it through `burn_rlora::Adapt` (the trait and this derive share the
//! name, as Burn's `Module` does). The derive implements the trait for a
//! struct with named fields: it hands every field, under the field's name, to
//! the walk (`burn_rlora::adapt::Walk`), which walks the field's layers if
//! its type implements `Adapt` and keeps it unchanged otherwise. Fields marked `#[adapt(skip)]` or
//! `#[module(skip)]` are kept unchanged without being looked at.
//!
//! A field whose type is a bare type parameter of the struct (say `inner: M`)
//! is adapted through `M: Adapt`, which the derive adds to the impl's bounds:
//! in generic code the compiler cannot tell whether `M` implements the trait.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, GenericParam, Type};

/// Implements `burn_rlora::Adapt` for a struct with named fields.
///
/// See the trait's documentation in `burn_rlora` for what walking does.
#[proc_macro_derive(Adapt, attributes(adapt))]
pub fn derive_adapt(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(input: DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let fields = named_fields(&input)?;
    let type_params: Vec<&syn::Ident> = input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            _ => None,
        })
        .collect();

    let mut map_exprs = Vec::new();
    let mut visit_stmts = Vec::new();
    let mut bounded = Vec::new();
    for field in fields {
        let ident = field.ident.as_ref().expect("named fields have names");
        if skipped(field)? {
            map_exprs.push(quote! { #ident: #ident });
            continue;
        }
        let param = bare_type_param(&field.ty, &type_params);
        if let Some(param) = param {
            if !bounded.contains(&param) {
                bounded.push(param);
            }
        }
        let (map, visit) = field_walk(ident, param.is_some());
        map_exprs.push(map);
        visit_stmts.push(visit);
    }
    let mut generics = input.generics.clone();
    let where_clause = generics.make_where_clause();
    for param in &bounded {
        where_clause
            .predicates
            .push(syn::parse_quote!(#param: ::burn_rlora::Adapt));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let names = fields.iter().map(|f| f.ident.as_ref());

    Ok(quote! {
        impl #impl_generics ::burn_rlora::Adapt for #name #ty_generics #where_clause {
            fn map_layers<__M: ::burn_rlora::adapt::LayerMapper>(
                self,
                __walk: &mut ::burn_rlora::adapt::Walk<'_, __M>,
            ) -> ::core::result::Result<Self, __M::Error> {
                let Self { #(#names),* } = self;
                ::core::result::Result::Ok(Self { #(#map_exprs),* })
            }

            #[allow(unused_variables)]
            fn visit_layers<__V: ::burn_rlora::adapt::LayerVisitor>(
                &self,
                __walk: &mut ::burn_rlora::adapt::Walk<'_, __V>,
            ) {
                #(#visit_stmts)*
            }
        }
    })
}

/// The named fields of the struct `input`; an error for anything else.
fn named_fields(
    input: &DeriveInput,
) -> syn::Result<&syn::punctuated::Punctuated<syn::Field, syn::token::Comma>> {
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Ok(&named.named),
            _ => Err(syn::Error::new_spanned(
                &input.ident,
                "#[derive(Adapt)] needs a struct with named fields (their names are the \
                 paths that target names match)",
            )),
        },
        _ => Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Adapt)] supports structs only; implement burn_rlora::Adapt by hand \
             for an enum",
        )),
    }
}

/// The field's expression in `map_layers` and its statement in
/// `visit_layers`. A field of a bare type parameter goes through its
/// `Adapt` bound; any other field through the walk's autoref dispatch, which
/// walks it when its type implements `Adapt` and keeps it otherwise.
fn field_walk(ident: &syn::Ident, bare_param: bool) -> (TokenStream2, TokenStream2) {
    let key = ident.to_string();
    if bare_param {
        return (
            quote! { #ident: __walk.field(#key, #ident)? },
            quote! { __walk.visit_field(#key, &self.#ident); },
        );
    }
    (
        quote! {
            #ident: {
                #[allow(unused_imports)]
                use ::burn_rlora::adapt::__private::{KeepField as _, MapField as _};
                (&mut ::burn_rlora::adapt::__private::Field::new(#ident))
                    .map_field(__walk, #key)?
            }
        },
        quote! {
            {
                #[allow(unused_imports)]
                use ::burn_rlora::adapt::__private::{SkipField as _, VisitField as _};
                (&::burn_rlora::adapt::__private::FieldRef(&self.#ident))
                    .visit_field(__walk, #key);
            }
        },
    )
}

/// `#[adapt(skip)]`, or Burn's `#[module(skip)]` (a field that is not part of
/// the module, so has no layer to adapt).
fn skipped(field: &syn::Field) -> syn::Result<bool> {
    use syn::punctuated::Punctuated;
    let mut skip = false;
    for attr in &field.attrs {
        if attr.path().is_ident("adapt") {
            let metas =
                attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)?;
            for meta in metas {
                match meta {
                    syn::Meta::Path(p) if p.is_ident("skip") => skip = true,
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "unknown adapt attribute; the only one is #[adapt(skip)]",
                        ))
                    }
                }
            }
        } else if attr.path().is_ident("module") {
            // Burn's own field attributes: only `skip` matters here.
            if let Ok(metas) =
                attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
            {
                skip |= metas
                    .iter()
                    .any(|m| matches!(m, syn::Meta::Path(p) if p.is_ident("skip")));
            }
        }
    }
    Ok(skip)
}

/// The type parameter that `ty` is, when `ty` is a bare type parameter.
fn bare_type_param<'a>(ty: &Type, params: &[&'a syn::Ident]) -> Option<&'a syn::Ident> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let ident = path.path.get_ident()?;
    params.iter().copied().find(|p| *p == ident)
}
