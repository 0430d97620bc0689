// The one translation unit that compiles Boost.Asio's and Asio SSL's implementation
// (BOOST_ASIO_SEPARATE_COMPILATION is set for every target that links saferlink_asio).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
