require ["fileinto", "variables", "mailbox"];
# One folder per list, made on first use.
if header :matches "List-Id" "*<*.*>" {
    set :lower "list" "${2}";
    fileinto :create "Lists/${list}";
    stop;
}
if exists "list-unsubscribe" {
    fileinto :create "Lists/unsorted";
    stop;
}
