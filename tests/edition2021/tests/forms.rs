//! Runs the forms compiled on edition 2021.

#[test]
fn every_form_compiles_and_records_on_edition_2021() {
    promtrack_edition2021::forms::exercise();
}
